"""``cross_category``: a buyer of category A gets the most popular items of the categories A's buyers buy.

For a user who purchased in the categories P, every category B outside P scores its best lift
``lift(A, B)`` over A in P (``category_cross_affinity``), among pairs with at least
``cross_category_min_users`` users who bought in both and a lift above ``cross_category_min_lift``; the
items of B (by catalog category) all carry B's score, so they come in popularity order, and the best B's
come first. Explained as ``{"because_you_bought": A, "category": B, "lift": ...}``.
"""

from __future__ import annotations

from collections.abc import Iterator

from freshrec.ranking.base import (
    Entry,
    Features,
    Recommendation,
    Request,
    constant_source,
    make_filter,
    merge,
    rounded,
    take,
)


class CrossCategory:
    name = "cross_category"

    def __init__(self, features: Features) -> None:
        self.features = features

    def targets(self, user_id: str) -> dict[str, tuple[float, str]]:
        """``B -> (lift, A)``: the categories to suggest to ``user_id``, each with the bought A behind it."""
        f = self.features
        reader = f.cross_affinity
        assert reader is not None
        s = f.settings.strategies
        bought = reader.purchased_categories(f.store, user_id)
        owned = set(bought)
        best: dict[str, tuple[float, str]] = {}
        for a in sorted(owned):
            for pair in reader.pairs_from(a):
                b = pair.category_b
                if b in owned or pair.users_both < s.cross_category_min_users:
                    continue
                lift = rounded(pair.lift)
                if lift <= s.cross_category_min_lift:
                    continue
                found = best.get(b)
                if found is None or lift > found[0]:  # ties: the first A by name
                    best[b] = (lift, a)
        return best

    def recommend(self, request: Request) -> list[Recommendation]:
        assert request.user_id is not None
        targets = self.targets(request.user_id)
        if request.category is not None:
            targets = {b: t for b, t in targets.items() if b == request.category}
        f = self.features
        sources: list[Iterator[Entry]] = [
            constant_source(lift, f.by_popularity(("category", b))) for b, (lift, _) in targets.items()
        ]
        ranked = take(merge(sources), make_filter(f, request), request.k)
        if not request.explain:
            return [Recommendation(i, score) for i, score in ranked]
        out = []
        for item_id, score in ranked:
            item = f.catalog.items[item_id]
            lift, a = targets[str(item.category)]
            out.append(
                Recommendation(
                    item_id, score, {"because_you_bought": a, "category": item.category, "lift": lift}
                )
            )
        return out
