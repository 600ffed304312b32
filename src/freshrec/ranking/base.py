"""What a strategy is, and the shared machinery: filters, ordering by popularity, merging sources.

Every strategy orders items by ``score desc, lifetime weighted popularity desc, item_id asc`` (SPEC §4)
with scores rounded to 9 decimals so that float noise between two equal sums never decides an order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from freshrec.catalog import Catalog
from freshrec.config import Settings
from freshrec.state.base import StateStore
from freshrec.views.base import (
    AffinityReader,
    ConversionReader,
    CoVisitReader,
    CrossAffinityReader,
    PairReader,
    PopularityReader,
    RecentReader,
    TierDriftReader,
    TrendingReader,
    WindowAffinityReader,
)
from freshrec.views.history import UserHistory
from freshrec.views.popularity import ALL as POPULARITY_ALL

SCORE_DECIMALS = 9

# An entry of a ranked source: (-score, -popularity, item_id); ascending order is the result order.
Entry = tuple[float, float, str]


def rounded(score: float) -> float:
    return round(score, SCORE_DECIMALS)


@dataclass(slots=True)
class Recommendation:
    item_id: str
    score: float
    reasons: dict[str, Any] | None = None


@dataclass(slots=True)
class Request:
    """One recommendation request, with its filters and the engine clock."""

    user_id: str | None
    k: int
    now: float
    category: str | None = None
    exclude_purchased: bool = True
    explain: bool = False
    purchased: frozenset[str] | set[str] = field(default_factory=frozenset)
    exclude: frozenset[str] | set[str] = field(default_factory=frozenset)  # never recommend these
    fallback: bool = True  # a strategy that has nothing may answer from its fallbacks (hybrid says no)


@dataclass(slots=True)
class Features:
    """Read access to everything strategies use: state, catalog and the views' readers."""

    settings: Settings
    store: StateStore
    catalog: Catalog
    category_profile: AffinityReader
    category_affinity: WindowAffinityReader
    recent_activity: RecentReader
    brand_profile: AffinityReader
    price_sensitivity: ConversionReader
    trending: TrendingReader
    popularity: PopularityReader
    history: UserHistory
    co_visits: CoVisitReader
    also_bought: PairReader
    # the extension views, kept by the embedded state only (None on a networked store)
    cross_affinity: CrossAffinityReader | None = None
    tier_drift: TierDriftReader | None = None

    def pop(self, item_id: str) -> float:
        return self.popularity.popularity(self.store, item_id)

    def pops(self, item_ids: Sequence[str]) -> list[float]:
        return self.popularity.popularities(self.store, item_ids)

    def by_popularity(self, ranking: tuple[Any, ...] = POPULARITY_ALL) -> Iterator[tuple[str, float]]:
        """Catalog items (of a category or tier ranking) in ``popularity desc, item_id asc`` order."""
        return self.popularity.ranked(self.store, ranking)


class Strategy(Protocol):
    """A way to rank items for a user (or anyone)."""

    name: str

    def recommend(self, request: Request) -> list[Recommendation]:
        """The top ``request.k`` items that pass the request's filters."""
        ...


class ItemStrategy(Protocol):
    """A way to rank items related to one item."""

    name: str

    def for_item(self, item_id: str, request: Request) -> list[Recommendation]:
        """The top ``request.k`` related items that pass the filters (never the item itself)."""
        ...


def make_filter(features: Features, request: Request) -> Callable[[str], bool]:
    """The default filters: known item, in stock, not purchased by the user, optional category.

    Items in ``request.exclude`` never pass.
    """
    items = features.catalog.items
    category = request.category
    purchased = request.purchased if request.exclude_purchased else frozenset()
    exclude = request.exclude

    def accept(item_id: str) -> bool:
        item = items.get(item_id)
        if item is None or not item.in_stock or item_id in purchased or item_id in exclude:
            return False
        return category is None or item.category == category

    return accept


def take(entries: Iterable[Entry], accept: Callable[[str], bool], k: int) -> list[tuple[str, float]]:
    """The first ``k`` accepted ``(item_id, score)`` of ``entries`` (already in result order)."""
    out: list[tuple[str, float]] = []
    if k <= 0:
        return out
    seen: set[str] = set()
    for neg_score, _, item_id in entries:
        if item_id in seen or not accept(item_id):
            continue
        seen.add(item_id)
        out.append((item_id, -neg_score))
        if len(out) >= k:
            break
    return out


def merge(sources: Iterable[Iterator[Entry]]) -> Iterator[Entry]:
    """Merge sources that are each in result order into one, in result order."""
    return heapq.merge(*sources)


def constant_source(score: float, ranked: Iterable[tuple[str, float]]) -> Iterator[Entry]:
    """Items already in popularity order, all with the same ``score``."""
    neg = -score
    for item_id, pop in ranked:
        yield (neg, -pop, item_id)


def sorted_group(features: Features, score: float, group: tuple[str | None, ...]) -> Iterator[Entry]:
    """The items of one catalog group, all sharing ``score``, in popularity order (read lazily)."""
    from freshrec.views.popularity import group_ranking

    return constant_source(score, features.by_popularity(group_ranking(*group)))


def by_trend(
    features: Features, window: float, category: str | None, score_of: Callable[[float], float]
) -> Iterator[Entry]:
    """Items trending in ``window`` (of a category) in result order, ``score_of`` mapping trending score
    to score."""
    return by_scores(features, features.trending.ranked(features.store, window, category), score_of)


def by_ranking(
    features: Features, ns: str, ranking: Hashable, score_of: Callable[[float], float] = float
) -> Iterator[Entry]:
    """Members of a ranking of the state store in result order (see :func:`by_scores`)."""
    return by_scores(features, features.store.rank_iter(ns, ranking), score_of)


def by_scores(
    features: Features, ranked: Iterable[tuple[str, float]], score_of: Callable[[float], float] = float
) -> Iterator[Entry]:
    """``(item, value)`` in ``value desc, item asc`` order, in result order, ``score_of`` mapping the
    value to the score.

    Runs of equal value are re-ordered by popularity (SPEC §4).
    """
    run: list[str] = []
    run_value = 0.0

    def ordered() -> list[Entry]:
        # popularity of a whole run of equal scores in one read (one round trip on a networked store)
        neg = -rounded(score_of(run_value))
        return sorted((neg, -p, i) for i, p in zip(run, features.pops(run), strict=True))

    for item_id, value in ranked:
        if run and value != run_value:
            yield from ordered()
            run = []
        run_value = value
        run.append(item_id)
    if run:
        yield from ordered()


def to_recommendations(
    ranked: list[tuple[str, float]], request: Request, explain: Callable[[str], dict[str, Any]] | None
) -> list[Recommendation]:
    if request.explain and explain is not None:
        return [Recommendation(item_id, score, explain(item_id)) for item_id, score in ranked]
    return [Recommendation(item_id, score) for item_id, score in ranked]
