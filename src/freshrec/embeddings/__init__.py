"""Text embeddings for items: the :class:`Embedder` protocol, its implementations and :func:`open_embedder`.

- ``"minilm"`` (the default): all-MiniLM-L6-v2 on onnxruntime from a model installed with freshrec — no
  PyTorch, nothing downloaded (:mod:`freshrec.embeddings.minilm`);
- ``"sentence-transformers:<model>"``: any sentence-transformers model, if you installed that package;
- ``"precomputed:<dim>"``: no text model, the vectors come with the items (:class:`PrecomputedEmbedder`).

Importing this package loads neither onnxruntime nor tokenizers (nor, ever, torch): the model is loaded at
the first ``embed``.

>>> open_embedder("precomputed:8")
PrecomputedEmbedder(8, name='precomputed:8')
"""

from __future__ import annotations

from freshrec.embeddings.base import (
    Embedder,
    EmbedderUnavailable,
    EmbeddingError,
    FloatMatrix,
    NoTextModel,
    normalized,
)
from freshrec.embeddings.minilm import NAME as MINILM_NAME
from freshrec.embeddings.minilm import MiniLMEmbedder
from freshrec.embeddings.precomputed import PrecomputedEmbedder
from freshrec.embeddings.sbert import SentenceTransformerEmbedder

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbedderUnavailable",
    "EmbeddingError",
    "FloatMatrix",
    "MiniLMEmbedder",
    "NoTextModel",
    "PrecomputedEmbedder",
    "SentenceTransformerEmbedder",
    "normalized",
    "open_embedder",
]

DEFAULT_EMBEDDER = "minilm"


def open_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """The embedder called ``name``; an embedder's own ``.name`` opens the same kind of embedder again.

    ``"minilm"`` (or ``"all-MiniLM-L6-v2-onnx-int8"``), ``"sentence-transformers:<model>"`` or
    ``"precomputed:<dim>"``. Unknown names raise ``ValueError``; a missing optional package raises
    :class:`EmbedderUnavailable` with the command that installs it.
    """
    spec = name.strip()
    if spec in ("minilm", MINILM_NAME):
        return MiniLMEmbedder()
    kind, sep, arg = spec.partition(":")
    if sep and kind == "sentence-transformers":
        return SentenceTransformerEmbedder(arg.strip())
    if sep and kind == "precomputed":
        try:
            dim = int(arg)
        except ValueError:
            raise ValueError(
                f"precomputed embedder needs a dimension, e.g. 'precomputed:384', got {name!r}"
            ) from None
        return PrecomputedEmbedder(dim)
    raise ValueError(
        f"unknown embedder {name!r}: use 'minilm', 'sentence-transformers:<model>' or 'precomputed:<dim>'"
    )
