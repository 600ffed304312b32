"""What every embedder offers, the errors they raise, and the checks they share.

An embedder turns texts into float32 rows of one fixed dimension, each row L2-normalised, so a dot product
of two rows is their cosine similarity. ``name`` names the vector space: vectors of embedders with
different names must never be compared (nor stored in one index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatMatrix = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Texts → unit-length float32 vectors of dimension :attr:`dim`.

    Plain attributes satisfy it as well as properties: ``name = "my-model"; dim = 768`` on a class will do.
    """

    @property
    def name(self) -> str:
        """The vector space: the model (and its variant) the vectors come from."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """One row per text, in order: float32, shape ``(len(texts), dim)``, each row of L2 norm 1."""
        ...


class EmbeddingError(Exception):
    """Embedding cannot be done as asked; the message says why and what to do."""


class EmbedderUnavailable(EmbeddingError):
    """The embedder needs a package or model file that is not installed (the message has the install hint)."""


class NoTextModel(EmbeddingError):
    """The embedder has no text model: its vectors come with the items (see ``PrecomputedEmbedder``)."""


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refusing a lone string (a classic mistake: it is a sequence of characters)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string: wrap it in a list")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return out


def normalized(vectors: ArrayLike, dim: int) -> FloatMatrix:
    """Rows of ``vectors`` (shape ``(n, dim)``) as a new C-contiguous float32 matrix, each row L2-normalised.

    Refuses a wrong shape, NaN or infinite values, and all-zero rows (they have no direction).

    >>> normalized([[3.0, 4.0]], 2).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    matrix = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"vector {int(np.flatnonzero(norms == 0)[0])} is all zeros")
    matrix /= norms
    return matrix
