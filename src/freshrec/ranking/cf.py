"""``cf``: collaborative filtering with the current ALS model (SPEC §4).

For a user, the user's factors are folded in from all their interactions at request time, so the answer
already reflects what they did a moment ago. For an item, items whose factors are closest in cosine.
Every model item is scored (a matrix-vector product), and the order is the SPEC's: score, then lifetime
popularity, then ``item_id``. A user or item the model cannot place is answered by the fallbacks
(``similar_content``, then ``trending``), explained as such, unless the caller (``hybrid``) asks for none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from freshrec.cf.model import Matrix
from freshrec.cf.service import CFService
from freshrec.ranking.base import (
    Features,
    ItemStrategy,
    Recommendation,
    Request,
    Strategy,
    make_filter,
    take,
)
from freshrec.views.base import InteractionsReader


def top_scored(
    features: Features, ids: list[str], scores: Matrix, accept: Callable[[str], bool], k: int
) -> list[tuple[str, float]]:
    """The ``k`` best accepted items of a score vector, in SPEC order, without sorting all of them.

    Candidates are every item scoring at least the ``m``-th best score (so ties at the cut are kept);
    ``m`` grows until ``k`` pass the filters or every item was looked at.
    """
    rounded = np.round(scores.astype(np.float64), 9)
    size = len(rounded)
    want = k
    pop = features.pop
    while True:
        m = min(size, 2 * want + 16)
        if m < size:
            cut = np.partition(rounded, size - m)[size - m]
            candidates = np.flatnonzero(rounded >= cut)
        else:
            candidates = np.arange(size)
        ordered = sorted((-float(rounded[c]), -pop(ids[c]), ids[c]) for c in candidates)
        out = take(ordered, accept, k)
        if len(out) >= k or m >= size:
            return out
        want *= 4


class CollaborativeFiltering:
    name = "cf"

    def __init__(
        self,
        features: Features,
        service: CFService,
        user_items: InteractionsReader,
        user_fallbacks: Mapping[str, Strategy],
        item_fallbacks: Mapping[str, ItemStrategy],
    ) -> None:
        self.features = features
        self.service = service
        self.user_items = user_items
        self.user_fallbacks = user_fallbacks
        self.item_fallbacks = item_fallbacks

    def recommend(self, request: Request) -> list[Recommendation]:
        model = self.service.model
        user = request.user_id
        if model is not None and user is not None:
            weights = self.user_items.weights(self.features.store, user)
            vector = model.user_vector(user, weights, self.service.settings.fold_in)
            if vector is not None:
                accept = make_filter(self.features, request)
                ranked = top_scored(self.features, model.item_ids, model.scores(vector), accept, request.k)
                if not request.explain:
                    return [Recommendation(i, s) for i, s in ranked]
                return [
                    Recommendation(
                        i,
                        s,
                        {
                            "cf": round(s, 6),
                            "because_you_interacted_with": [
                                j for j, _ in model.contributions(weights, i) if j != i
                            ],
                        },
                    )
                    for i, s in ranked
                ]
        if not request.fallback:
            return []
        for name, strategy in self.user_fallbacks.items():
            if user is None and name != "trending":
                continue
            out = strategy.recommend(request)
            if out:
                return _marked(out, name, request)
        return []

    def for_item(self, item_id: str, request: Request) -> list[Recommendation]:
        model = self.service.model
        scores = model.similar(item_id) if model is not None else None
        if model is not None and scores is not None:
            accept = make_filter(self.features, request)
            ranked = top_scored(
                self.features, model.item_ids, scores, lambda i: i != item_id and accept(i), request.k
            )
            return [
                Recommendation(i, s, {"cf_similarity": round(s, 6)} if request.explain else None)
                for i, s in ranked
            ]
        if not request.fallback:
            return []
        for name, strategy in self.item_fallbacks.items():
            out = strategy.for_item(item_id, request)
            if out:
                return _marked(out, name, request)
        return []


def _marked(out: list[Recommendation], name: str, request: Request) -> list[Recommendation]:
    if request.explain:
        for rec in out:
            rec.reasons = {"fallback": name, **(rec.reasons or {})}
    return out
