"""Item-to-item views: ``co_visits`` (10-minute co-visits) and ``also_bought`` (distinct co-purchasers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from freshrec.config import Settings
from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row

CO_VISIT_RANKS = "co_visits"
RECENT = "co_visit_recent"
ALSO_BOUGHT_RANKS = "also_bought"
BOUGHT = "also_bought_purchases"


class CoVisits:
    """``co_visits``: every pair of one user's events with ``0 < after.ts − before.ts ≤ window`` counts once.

    That is the SQL self-join of the DataSQRL example, with no de-duplication, whatever the arrival order:
    each event is paired with the user's events within the window on both sides, which a per-user
    timeline keeps for ``window + allowed lateness``. An event older than the user's newest by more than
    the allowed lateness cannot find its partners any more and is left out (``late_events``).

    For each before-item, after-items are kept in a ranking by frequency.
    """

    name = "co_visits"
    keyed_by = "item_id"

    def __init__(self, settings: Settings) -> None:
        self.window = settings.views.co_visit_window_seconds
        self.lateness = settings.views.co_visit_allowed_lateness_seconds
        self.late_events = 0

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        user, item, ts = event.user_id, event.item_id, event.ts
        partners, newest = store.timeline_window(RECENT, user, ts - self.window, ts + self.window)
        if newest is not None and ts < newest - self.lateness:
            self.late_events += 1
            return
        for other_ts, other in partners:
            if other_ts < ts:
                store.rank_add(CO_VISIT_RANKS, other, item, 1.0)
            elif other_ts > ts:
                store.rank_add(CO_VISIT_RANKS, item, other, 1.0)
        store.timeline_add(RECENT, user, ts, item)
        latest = ts if newest is None else max(newest, ts)
        store.timeline_trim(RECENT, user, latest - self.window - self.lateness)

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime counts; the per-user timelines are trimmed as events arrive."""

    def ranked(self, store: StateStore, item_id: str) -> Iterator[tuple[str, float]]:
        """After-items of ``item_id``: frequency desc, item_id asc."""
        return store.rank_iter(CO_VISIT_RANKS, item_id)

    def frequencies(self, store: StateStore, befores: Sequence[str], after_item: str) -> list[float | None]:
        """The frequency of ``(before, after_item)`` for each of ``befores`` (None when never seen)."""
        return store.rank_scores(CO_VISIT_RANKS, befores, after_item)

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        befores = [key] if key is not None else sorted(str(n) for n in store.rank_names(CO_VISIT_RANKS))
        return [
            {"before_item": before, "after_item": after, "frequency": int(frequency)}
            for before in befores
            for after, frequency in store.rank_iter(CO_VISIT_RANKS, before)
        ]


class AlsoBought:
    """``also_bought``: for two items, the number of distinct users who purchased both."""

    name = "also_bought"
    keyed_by = "item_id"

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        if event.type != "purchase":
            return
        user, item = event.user_id, event.item_id
        bought = store.set_members(BOUGHT, user)
        if item in bought:
            return
        for other in list(bought):
            store.rank_add(ALSO_BOUGHT_RANKS, item, other, 1.0)
            store.rank_add(ALSO_BOUGHT_RANKS, other, item, 1.0)
        store.set_add(BOUGHT, user, item)

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def ranked(self, store: StateStore, item_id: str) -> Iterator[tuple[str, float]]:
        """Items bought with ``item_id``: users desc, item_id asc."""
        return store.rank_iter(ALSO_BOUGHT_RANKS, item_id)

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        items = [key] if key is not None else sorted(str(n) for n in store.rank_names(ALSO_BOUGHT_RANKS))
        return [
            {"item_id": item, "other_item_id": other, "users": int(users)}
            for item in items
            for other, users in store.rank_iter(ALSO_BOUGHT_RANKS, item)
        ]
