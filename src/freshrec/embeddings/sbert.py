"""Any sentence-transformers model, for those who installed sentence-transformers (and so PyTorch) themselves.

freshrec does not depend on it: the module is imported when such an embedder is made, never before.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from freshrec.embeddings.base import EmbedderUnavailable, FloatMatrix, check_texts, normalized

PREFIX = "sentence-transformers:"


class SentenceTransformerEmbedder:
    """``SentenceTransformer(model).encode(texts, normalize_embeddings=True)`` as an ``Embedder``.

    ``model`` is what ``SentenceTransformer`` accepts: a local directory, or a hub id (which it may try to
    download). The model is loaded here, at construction, so a missing package or model shows at start-up.
    """

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        if not model:
            raise ValueError(
                "name a sentence-transformers model, e.g. 'sentence-transformers:all-MiniLM-L6-v2'"
            )
        try:
            module = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the sentence-transformers embedder needs the sentence-transformers package, which freshrec "
                "does not install: pip install sentence-transformers (install a CPU torch first if you have "
                "no GPU), or use the built-in 'minilm' embedder, which needs no torch"
            ) from exc
        self._model: Any = module.SentenceTransformer(model, device=device)
        self.name = PREFIX + model
        self.batch_size = batch_size
        dim = None
        for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
            if hasattr(self._model, method):
                dim = getattr(self._model, method)()
                break
        self.dim: int = int(dim) if dim else int(self.embed([""]).shape[1])

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name.removeprefix(PREFIX)!r})"

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        items = check_texts(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            items,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalized(vectors, vectors.shape[1])
