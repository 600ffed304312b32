"""``trending`` and ``trending_for_you``: the current hopping window's trending scores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from freshrec.ranking.base import (
    Entry,
    Features,
    Recommendation,
    Request,
    by_trend,
    make_filter,
    merge,
    take,
    to_recommendations,
)
from freshrec.views import popularity


def _untrending(
    features: Features, window: float, category: str | None, keep: Callable[[str], bool], score: float
) -> Iterator[Entry]:
    """Items (of ``category``) with no trending score in ``window``, by popularity, at ``score``."""
    trending, store = features.trending, features.store
    pop_ranking = ("category", category) if category is not None else popularity.ALL
    neg = -score
    for item_id, pop in features.by_popularity(pop_ranking):
        if trending.score(store, window, item_id) is None and keep(item_id):
            yield (neg, -pop, item_id)


PER_CATEGORY_WALKS = 32


def _anything(item_id: str) -> bool:
    return True


def _then(first: Iterator[Entry], second: Iterator[Entry]) -> Iterator[Entry]:
    """``first`` then ``second``, when every score of ``first`` is above every score of ``second``.

    Unlike a merge, ``second`` (a walk of the popularity order past trending items) starts only if
    ``first`` runs out.
    """
    yield from first
    yield from second


def _in_order(trending: Iterator[Entry], untrending: Iterator[Entry], weight: float) -> list[Iterator[Entry]]:
    """Items with a trending score outrank the same category's untrending ones when the weight is positive."""
    return [_then(trending, untrending)] if weight > 0 else [trending, untrending]


def _not_in(features: Features, categories: set[str]) -> Callable[[str], bool]:
    items = features.catalog.items

    def keep(item_id: str) -> bool:
        item = items.get(item_id)
        return item is not None and item.category not in categories

    return keep


def _where(entries: Iterator[Entry], keep: Callable[[str], bool]) -> Iterator[Entry]:
    return (e for e in entries if keep(e[2]))


class Trending:
    """The current ``content_trending`` score; item popularity when the current window is empty."""

    name = "trending"

    def __init__(self, features: Features) -> None:
        self.features = features

    def recommend(self, request: Request) -> list[Recommendation]:
        f = self.features
        window = f.trending.current_window(request.now)
        accept = make_filter(f, request)
        category = request.category
        if f.trending.size_of(f.store, window) == 0:
            ranking = ("category", category) if category is not None else popularity.ALL
            entries: Iterator[Entry] = ((-pop, -pop, i) for i, pop in f.by_popularity(ranking))
            ranked = take(entries, accept, request.k)
            return to_recommendations(ranked, request, lambda i: {"popularity": f.pop(i)})
        entries = _then(
            by_trend(f, window, category, lambda t: t), _untrending(f, window, category, _anything, 0.0)
        )
        ranked = take(entries, accept, request.k)
        return to_recommendations(ranked, request, lambda i: {"trending_score": _trend(f, window, i)})


class TrendingForYou:
    """0.4·trending score + 0.6·the user's affinity to the item's category in the current 7-day window."""

    name = "trending_for_you"

    def __init__(self, features: Features) -> None:
        self.features = features

    def recommend(self, request: Request) -> list[Recommendation]:
        assert request.user_id is not None
        f = self.features
        s = f.settings.strategies
        w_trend, w_aff = s.trending_for_you_trending_weight, s.trending_for_you_affinity_weight
        window = f.trending.current_window(request.now)
        weekly = f.category_affinity.current_affinities(f.store, request.user_id, request.now)
        bonus = {c: w_aff * a for c, a in weekly.items() if a != 0.0}
        if request.category is not None:
            bonus = {c: b for c, b in bonus.items() if c == request.category}
        sources: list[Iterator[Entry]] = []
        for category, extra in bonus.items():
            trending_first = by_trend(f, window, category, _linear(w_trend, extra))
            sources.extend(
                _in_order(trending_first, _untrending(f, window, category, _anything, extra), w_trend)
            )
        if request.category is None:
            others = _not_in(f, set(bonus))
            rest = [c for c in f.catalog.groups_by_category if c not in bonus]
            if len(rest) <= PER_CATEGORY_WALKS:
                # few other categories: walk each one's ranking instead of skipping the user's categories
                trending_first = merge([by_trend(f, window, c, _linear(w_trend, 0.0)) for c in rest])
            else:
                trending_first = _where(by_trend(f, window, None, lambda t: w_trend * t), others)
            sources.extend(_in_order(trending_first, _untrending(f, window, None, others, 0.0), w_trend))
        elif request.category not in bonus:
            trending_first = by_trend(f, window, request.category, lambda t: w_trend * t)
            untrending = _untrending(f, window, request.category, _anything, 0.0)
            sources.extend(_in_order(trending_first, untrending, w_trend))
        ranked = take(merge(sources), make_filter(f, request), request.k)

        def explain(item_id: str) -> dict[str, Any]:
            item = f.catalog.items.get(item_id)
            category = None if item is None else item.category
            return {
                "trending": round(w_trend * _trend(f, window, item_id), 6),
                "weekly_category_affinity": round(bonus.get(category, 0.0) if category else 0.0, 6),
            }

        return to_recommendations(ranked, request, explain)


def _linear(weight: float, extra: float) -> Callable[[float], float]:
    def score(trending_score: float) -> float:
        return weight * trending_score + extra

    return score


def _trend(features: Features, window: float, item_id: str) -> float:
    return features.trending.score(features.store, window, item_id) or 0.0
