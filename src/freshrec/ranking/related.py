"""Item-to-item strategies: ``covisit`` and ``also_bought`` (for an item; ``covisit`` also for a user)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

import numpy as np

from freshrec.ranking.arrays import pair_sums, top_accepted
from freshrec.ranking.base import (
    Features,
    Recommendation,
    Request,
    by_scores,
    make_filter,
    rounded,
    take,
)


class CoVisit:
    """After-items of ``co_visits`` by frequency; for a user, summed over their last items."""

    name = "covisit"

    def __init__(self, features: Features, last_items: int = 5) -> None:
        self.features = features
        self.last_items = last_items

    def for_item(self, item_id: str, request: Request) -> list[Recommendation]:
        f = self.features
        accept = make_filter(f, request)
        ranked = _array_ranked(f, f.co_visits, [item_id], accept, request.k)
        if ranked is None:
            ranked = take(
                by_scores(f, f.co_visits.ranked(f.store, item_id)),
                lambda i: i != item_id and accept(i),
                request.k,
            )
        return [
            Recommendation(
                i, s, {"frequency": int(s), "because_you_viewed": item_id} if request.explain else None
            )
            for i, s in ranked
        ]

    def recommend(self, request: Request) -> list[Recommendation]:
        """Threshold algorithm over the after-item rankings of the user's last distinct items."""
        f = self.features
        assert request.user_id is not None
        sources: list[str] = []
        for item_id, _, _ in f.history.recent_items(f.store, request.user_id):
            if item_id not in sources:
                sources.append(item_id)
            if len(sources) >= self.last_items:
                break
        if not sources:
            return []
        accept = make_filter(f, request)
        exclude = set(sources)
        store = f.store
        co_visits = f.co_visits
        fast = _array_ranked(f, co_visits, sources, accept, request.k)
        if fast is not None:
            return self._answer(sources, fast, request)
        iterators: list[Iterator[tuple[str, float]] | None] = [co_visits.ranked(store, s) for s in sources]
        frontier = [float("inf")] * len(iterators)
        scored: dict[str, float] = {}
        top: list[float] = []  # min-heap of the k best scores so far
        while any(it is not None for it in iterators):
            for n, it in enumerate(iterators):
                if it is None:
                    continue
                nxt = next(it, None)
                if nxt is None:
                    iterators[n] = None
                    frontier[n] = 0.0
                    continue
                item_id, value = nxt
                frontier[n] = value
                if item_id in scored or item_id in exclude or not accept(item_id):
                    continue
                total = rounded(sum(s or 0.0 for s in co_visits.frequencies(store, sources, item_id)))
                scored[item_id] = total
                heapq.heappush(top, total)
                if len(top) > request.k:
                    heapq.heappop(top)
            # an item not seen yet scores at most the sum of the frontiers
            if len(top) >= request.k and top[0] > sum(frontier):
                break
        pops = f.pops(list(scored))
        best = sorted((-v, -p, i) for (i, v), p in zip(scored.items(), pops, strict=True))[: request.k]
        return self._answer(sources, [(i, -neg) for neg, _, i in best], request)

    def _answer(
        self, sources: list[str], best: list[tuple[str, float]], request: Request
    ) -> list[Recommendation]:
        if not request.explain:
            return [Recommendation(i, score) for i, score in best]
        f = self.features
        out = []
        for i, score in best:
            found = f.co_visits.frequencies(f.store, sources, i)
            reasons = {s: int(v) for s, v in zip(sources, found, strict=True) if v}
            out.append(Recommendation(i, score, dict(reasons)))
        return out


class AlsoBought:
    """Items bought by the most users who also bought this one."""

    name = "also_bought"

    def __init__(self, features: Features) -> None:
        self.features = features

    def for_item(self, item_id: str, request: Request) -> list[Recommendation]:
        f = self.features
        accept = make_filter(f, request)
        ranked = _array_ranked(f, f.also_bought, [item_id], accept, request.k)
        if ranked is None:
            bought_with = by_scores(f, f.also_bought.ranked(f.store, item_id))
            ranked = take(bought_with, lambda i: i != item_id and accept(i), request.k)
        return [
            Recommendation(i, s, {"users": int(s), "bought_with": item_id} if request.explain else None)
            for i, s in ranked
        ]


def _array_ranked(
    f: Features, view: object, sources: list[str], accept: Callable[[str], bool], k: int
) -> list[tuple[str, float]] | None:
    """The top ``k`` partners of ``sources`` (summed, sources left out) on columnar views; else None."""
    summed = pair_sums(view, sources)
    if summed is None:
        return None
    partners, values, source_ids = summed
    values[np.isin(partners, source_ids)] = 0.0
    return top_accepted(f.popularity, partners, values, accept, k)
