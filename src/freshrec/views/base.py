"""What a feature view is: it applies one event to state, and reads its rows back."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from freshrec.catalog import Item
from freshrec.config import Settings
from freshrec.events import Event
from freshrec.state.base import StateStore

Row = dict[str, Any]


@dataclass(slots=True)
class Resolved:
    """An event's item attributes: the event's own when given (SPEC §1), else the catalog's.

    ``item_category``, ``item_brand`` and ``item_tier`` are the catalog's, used by indexes that strategies
    read.
    """

    category: str | None
    brand: str | None
    price: float | None
    tier: str | None
    weight: float
    item_category: str | None
    item_tier: str | None
    item_brand: str | None = None


class View(Protocol):
    """A feature view maintained per event."""

    name: str
    keyed_by: str  # "user_id", "item_id" or "category": the filter that selects one key's rows

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        """Fold one event into the view's state."""

    def expire(self, store: StateStore, now: float) -> None:
        """Drop state that is out of retention at ``now``."""

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        """Rows of the view (of one key when given), as of ``now``."""
        ...


class ItemAware(Protocol):
    """A view that keeps an index over catalog attributes and must follow catalog changes."""

    def on_item_change(self, old: Item | None, new: Item | None, store: StateStore, tiers: Any) -> None: ...


def window_start(ts: float, size: float) -> float:
    """Start of the epoch-aligned window of ``size`` seconds that holds ``ts``.

    >>> window_start(7_205.0, 3_600.0)
    7200.0
    """
    return math.floor(ts / size) * size


def type_counts(settings: Settings, fields: Mapping[str, float]) -> dict[str, int]:
    return {f"{t}_count": int(fields.get(f"{t}_count", 0.0)) for t in settings.events.weights}


# -- what strategies read of the views, whichever layout holds them --------------------------------------
class AffinityReader(Protocol):
    def affinities(self, store: Any, user_id: str) -> dict[str, float]:
        """``name -> lifetime affinity`` of one user (categories or brands)."""
        ...


class WindowAffinityReader(Protocol):
    def current_affinities(self, store: Any, user_id: str, now: float) -> dict[str, float]:
        """``category -> affinity`` of one user in the window holding ``now``."""
        ...


class RecentReader(Protocol):
    def recent_scores(self, store: Any, user_id: str, now: float) -> dict[str, float]:
        """``category -> interactions`` of one user in the recent windows."""
        ...


class ConversionReader(Protocol):
    def conversion_rates(self, store: Any, user_id: str) -> dict[str, float | None]:
        """``tier -> purchases / views`` of one user (None without views)."""
        ...


class TrendingReader(Protocol):
    size: float

    def current_window(self, now: float) -> float:
        """Start of the current hopping window."""
        ...

    def ranked(self, store: Any, window: float, category: str | None = None) -> Iterator[tuple[str, float]]:
        """Items with a trending score in ``window`` (of a catalog category), score desc, item_id asc."""
        ...

    def score(self, store: Any, window: float, item_id: str) -> float | None:
        """``item_id``'s trending score in ``window``, None when it has none."""
        ...

    def size_of(self, store: Any, window: float) -> int:
        """How many items have a trending score in ``window``."""
        ...

    def window_row(self, store: Any, item_id: str, start: float) -> Row | None:
        """The ``content_trending`` row of ``item_id`` in the window starting at ``start``."""
        ...


class PopularityReader(Protocol):
    def popularity(self, store: Any, item_id: str) -> float:
        """The item's lifetime weighted total (0 when it has no events)."""
        ...

    def popularities(self, store: Any, item_ids: Sequence[str]) -> list[float]:
        """:meth:`popularity` of many items."""
        ...

    def ranked(self, store: Any, ranking: tuple[Any, ...]) -> Iterator[tuple[str, float]]:
        """Items of a popularity ranking (overall, category, tier, group): total desc, item_id asc."""
        ...


class PairReader(Protocol):
    def ranked(self, store: Any, item_id: str) -> Iterator[tuple[str, float]]:
        """Items paired with ``item_id`` (co-visited after it, bought with it): value desc, item_id asc."""
        ...


class CoVisitReader(PairReader, Protocol):
    late_events: int

    def frequencies(self, store: Any, befores: Sequence[str], after_item: str) -> list[float | None]:
        """The frequency of ``(before, after_item)`` for each of ``befores`` (None when never seen)."""
        ...


class InteractionsReader(Protocol):
    name: str

    def weights(self, store: Any, user_id: str) -> dict[str, float]:
        """``item -> summed event weight`` of one user."""
        ...

    def counts(self, store: Any, user_id: str) -> dict[str, float]:
        """``item -> interactions`` of one user."""
        ...

    def users(self, store: Any) -> list[str]:
        """Every user with an interaction."""
        ...


class CrossAffinityReader(Protocol):
    def purchased_categories(self, store: Any, user_id: str) -> list[str]:
        """The categories the user purchased in."""
        ...

    def pairs_from(self, category: str) -> list[Any]:
        """The rows ``(category, B)`` of ``category_cross_affinity``."""
        ...


class TierDriftReader(Protocol):
    def drift(self, store: Any, user_id: str, now: float) -> Any:
        """The user's ``drifting_to`` tier (or None) and its ``share_change``."""
        ...
