"""``similar_content``: cosine similarity of item embeddings to a user's interest centroid or to an item."""

from __future__ import annotations

import numpy as np

from freshrec.embeddings import FloatMatrix
from freshrec.ranking.base import Features, Recommendation, Request, make_filter
from freshrec.vectors.base import VectorIndex
from freshrec.views.interest import UserInterest


class SimilarContent:
    name = "similar_content"

    def __init__(self, features: Features, vectors: VectorIndex, interest: UserInterest) -> None:
        self.features = features
        self.vectors = vectors
        self.interest = interest

    def user_vector(self, user_id: str) -> FloatMatrix | None:
        centroid, _ = self.interest.centroid(self.features.store, user_id)
        return centroid

    def nearest(self, vector: FloatMatrix, request: Request, exclude: set[str]) -> list[tuple[str, float]]:
        """The ``k`` nearest items that pass the filters: ask the index for more until enough pass."""
        if not np.any(vector):
            return []
        accept = make_filter(self.features, request)
        # room for the items the filters drop (bought, out of stock), so that one search usually suffices
        wanted = request.k + request.k // 2 + 8
        size = len(self.vectors)
        if size == 0:
            return []
        while True:
            found = self.vectors.search(vector, min(size, wanted + len(exclude)), exclude)
            kept = [(i, s) for i, s in found if accept(i)]
            if len(kept) >= request.k or wanted + len(exclude) >= size:
                return kept[: request.k]
            wanted *= 4

    def recommend(self, request: Request) -> list[Recommendation]:
        assert request.user_id is not None
        vector = self.user_vector(request.user_id)
        if vector is None:
            return []
        return [
            Recommendation(
                i, round(s, 9), {"similarity_to_your_interests": round(s, 6)} if request.explain else None
            )
            for i, s in self.nearest(vector, request, set())
        ]

    def for_item(self, item_id: str, request: Request) -> list[Recommendation]:
        vector = self.vectors.vector(item_id)
        if vector is None:
            return []
        return [
            Recommendation(
                i,
                round(s, 9),
                {"similarity": round(s, 6), "similar_to": item_id} if request.explain else None,
            )
            for i, s in self.nearest(vector, request, {item_id})
        ]
