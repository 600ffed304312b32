"""Load onnxruntime (when installed) before usearch.

With usearch 2.26 and onnxruntime 1.31 in one process, importing usearch first and onnxruntime second
crashes the interpreter (segmentation fault while onnxruntime loads); the other order works. freshrec
uses both (the embedder and the ANN index), so the vector index makes sure of the order.
"""

from __future__ import annotations

import importlib
import importlib.util

if importlib.util.find_spec("onnxruntime") is not None:
    importlib.import_module("onnxruntime")
