"""Vectors the caller computes (e.g. items that carry their own ``properties.embedding``): no text model."""

from __future__ import annotations

from collections.abc import Sequence

from numpy.typing import ArrayLike

from freshrec.embeddings.base import FloatMatrix, NoTextModel, normalized

PREFIX = "precomputed:"


class PrecomputedEmbedder:
    """Stands for a vector space whose vectors come from outside freshrec.

    :meth:`embed` refuses (there is no model to embed text with); :meth:`vectors` checks and normalises the
    vectors the caller brings. ``name`` names the space, so vectors of different origins are not mixed.

    >>> emb = PrecomputedEmbedder(3, name="my-encoder-v2")
    >>> emb.vectors([[0.0, 0.0, 2.0]]).tolist()
    [[0.0, 0.0, 1.0]]
    """

    def __init__(self, dim: int, *, name: str | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.dim = dim
        self.name = name if name is not None else f"{PREFIX}{dim}"

    def __repr__(self) -> str:
        return f"PrecomputedEmbedder({self.dim}, name={self.name!r})"

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        raise NoTextModel(
            f"embedder {self.name!r} has no text model: its {self.dim}-dimensional vectors are given by the "
            "caller (an item's properties.embedding); send the vector with the item, or configure a text "
            "embedder such as 'minilm'"
        )

    def vectors(self, rows: ArrayLike) -> FloatMatrix:
        """The caller's vectors (shape ``(n, dim)``), checked and L2-normalised, as float32."""
        return normalized(rows, self.dim)
