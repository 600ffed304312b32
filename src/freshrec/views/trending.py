"""``content_trending``: per item, 2-h windows hopping every 15 min (epoch-aligned).

Besides the per-window counters it keeps, per window, rankings of items by trending score (overall and
per catalog category) that the trending strategies walk instead of scanning items.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from freshrec.catalog import Item
from freshrec.config import Settings
from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row

RANKS = "trending_rank"


class ContentTrending:
    name = "content_trending"
    keyed_by = "item_id"

    def __init__(self, settings: Settings) -> None:
        v = settings.views
        self.size = v.trending_window_seconds
        self.slide = v.trending_slide_seconds
        self.hops = round(self.size / self.slide)
        self.retention = v.trending_retention_seconds
        self.w_view = v.trending_view_weight
        self.w_click = v.trending_click_weight
        self.w_user = v.trending_unique_user_weight

    def current_window(self, now: float) -> float:
        """Start of the window ending at the first slide boundary strictly after ``now``."""
        end = math.floor(now / self.slide) * self.slide + self.slide
        return end - self.size

    def kept_from(self, now: float) -> float:
        """Windows starting before this have closed more than ``retention`` ago."""
        return now - self.retention - self.size

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        last = math.floor(event.ts / self.slide) * self.slide
        kept_from = self.kept_from(now)
        is_view = event.type == "view"
        is_click = event.type == "click"
        deltas: dict[str, float] = {"events": 1.0}
        if is_view:
            deltas["recent_views"] = 1.0
        elif is_click:
            deltas["recent_clicks"] = 1.0
        if event.dwell_seconds is not None:
            deltas["dwell_total"] = event.dwell_seconds
            deltas["dwell_events"] = 1.0
        base_score = self.w_view * is_view + self.w_click * is_click
        item = event.item_id
        category = attrs.item_category
        starts = [last - hop * self.slide for hop in range(self.hops)]
        starts = [start for start in starts if start >= kept_from]
        new_user = store.add_distinct_windows(self.name, item, "", event.user_id, starts)
        for start, new in zip(starts, new_user, strict=True):
            score = base_score + self.w_user * new
            store.window_add(self.name, item, "", start, deltas)
            if score:
                store.rank_add(RANKS, ("all", start), item, score, start)
                store.rank_add(RANKS, ("category", start, category), item, score, start)

    def on_item_change(self, old: Item | None, new: Item | None, store: StateStore, tiers: Any) -> None:
        old_category = None if old is None else old.category
        if old is None or (new is not None and new.category == old_category):
            return
        for start in store.window_starts(self.name):
            score = store.rank_score(RANKS, ("category", start, old_category), old.item_id)
            if score is None:
                continue
            store.rank_remove(RANKS, ("category", start, old_category), old.item_id)
            if new is not None:
                store.rank_add(RANKS, ("category", start, new.category), new.item_id, score, start)
            else:
                store.rank_remove(RANKS, ("all", start), old.item_id)

    def expire(self, store: StateStore, now: float) -> None:
        store.expire_windows(self.name, self.kept_from(now))
        store.expire_windows(RANKS, self.kept_from(now))

    # -- what the trending strategies read (the columnar view answers the same) ----------------------
    def ranked(
        self, store: StateStore, window: float, category: str | None = None
    ) -> Iterator[tuple[str, float]]:
        """Items with a trending score in ``window`` (of a catalog category), score desc, item_id asc."""
        key = ("all", window) if category is None else ("category", window, category)
        return store.rank_iter(RANKS, key)

    def score(self, store: StateStore, window: float, item_id: str) -> float | None:
        return store.rank_score(RANKS, ("all", window), item_id)

    def size_of(self, store: StateStore, window: float) -> int:
        return store.rank_size(RANKS, ("all", window))

    def window_row(self, store: StateStore, item_id: str, start: float) -> Row | None:
        fields = store.window_members(self.name, item_id).get(("", start))
        return None if fields is None else self.row(store, item_id, start, fields)

    def score_fields(self, fields: Any, unique_users: int) -> float:
        return float(
            self.w_view * fields.get("recent_views", 0.0)
            + self.w_click * fields.get("recent_clicks", 0.0)
            + self.w_user * unique_users
        )

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        items = [key] if key is not None else store.keys(self.name)
        kept_from = self.kept_from(now)
        out: list[Row] = []
        for item in items:
            for (_, start), fields in store.window_members(self.name, item).items():
                if start < kept_from:
                    continue
                out.append(self.row(store, item, start, fields))
        return out

    def row(self, store: StateStore, item: str, start: float, fields: Any) -> Row:
        users = store.count_distinct(self.name, item, "", start)
        dwell_events = fields.get("dwell_events", 0.0)
        return {
            "item_id": item,
            "window_start": start,
            "window_end": start + self.size,
            "recent_views": int(fields.get("recent_views", 0.0)),
            "recent_clicks": int(fields.get("recent_clicks", 0.0)),
            "unique_users": users,
            "avg_dwell": fields.get("dwell_total", 0.0) / dwell_events if dwell_events else None,
            "trending_score": self.score_fields(fields, users),
        }
