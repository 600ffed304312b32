"""Per-user category views: lifetime profile, 7-day windows, and recent (1-h window) activity."""

from __future__ import annotations

from freshrec.config import Settings
from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row, type_counts, window_start


class UserCategoryProfile:
    """``user_category_profile``: lifetime and 30-day-decayed affinity per (user, category)."""

    name = "user_category_profile"
    keyed_by = "user_id"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.half_life = settings.views.decay_half_life_seconds

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        category = attrs.category
        if category is None:
            return
        deltas = {"affinity_score": attrs.weight, f"{event.type}_count": 1.0}
        if store.add_distinct(self.name, event.user_id, category, event.item_id):
            deltas["unique_items_interacted"] = 1.0
        store.add(self.name, event.user_id, category, deltas)
        store.put_max(self.name, event.user_id, category, "last_engaged_at", event.ts)
        store.add_decayed(
            self.name, event.user_id, category, "decayed", attrs.weight, event.ts, self.half_life
        )

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def affinities(self, store: StateStore, user_id: str) -> dict[str, float]:
        return {str(c): f["affinity_score"] for c, f in store.members(self.name, user_id).items()}

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        out: list[Row] = []
        for user in users:
            for category, fields in store.members(self.name, user).items():
                out.append(
                    {
                        "user_id": user,
                        "category": category,
                        "affinity_score": fields.get("affinity_score", 0.0),
                        "decayed_affinity": store.read_decayed(
                            self.name, user, category, "decayed", now, self.half_life
                        ),
                        "unique_items_interacted": int(fields.get("unique_items_interacted", 0.0)),
                        "last_engaged_at": fields.get("last_engaged_at"),
                        **type_counts(self.settings, fields),
                    }
                )
        return out


class UserCategoryAffinity:
    """``user_category_affinity``: per (user, category) in 7-day tumbling windows, last 4 kept."""

    name = "user_category_affinity"
    keyed_by = "user_id"

    def __init__(self, settings: Settings) -> None:
        self.size = settings.views.category_window_seconds
        self.kept = settings.views.category_windows_kept
        self.score_weights = settings.views.category_window_types

    def oldest_kept(self, now: float) -> float:
        return window_start(now, self.size) - (self.kept - 1) * self.size

    def current(self, now: float) -> float:
        return window_start(now, self.size)

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        if attrs.category is None:
            return
        start = window_start(event.ts, self.size)
        if start < self.oldest_kept(now):
            return  # later than retention: its window is gone
        kind = event.type
        deltas = {"events": 1.0}
        if kind == "view":
            deltas["views"] = 1.0
        elif kind == "click":
            deltas["clicks"] = 1.0
        elif kind == "share":
            deltas["shares"] = 1.0
        elif kind == "save":
            deltas["saves"] = 1.0
        score = self.score_weights.get(kind)
        if score is not None:
            deltas["affinity_score"] = score
        if event.dwell_seconds is not None:
            deltas["total_dwell_seconds"] = event.dwell_seconds
            deltas["dwell_events"] = 1.0
        store.window_add(self.name, event.user_id, attrs.category, start, deltas)

    def expire(self, store: StateStore, now: float) -> None:
        store.expire_windows(self.name, self.oldest_kept(now))

    def current_affinities(self, store: StateStore, user_id: str, now: float) -> dict[str, float]:
        start = self.current(now)
        return {
            str(category): fields.get("affinity_score", 0.0)
            for (category, ws), fields in store.window_members(self.name, user_id).items()
            if ws == start
        }

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        oldest = self.oldest_kept(now)
        out: list[Row] = []
        for user in users:
            for (category, start), fields in store.window_members(self.name, user).items():
                if start < oldest:
                    continue
                dwell_events = fields.get("dwell_events", 0.0)
                total_dwell = fields.get("total_dwell_seconds", 0.0)
                out.append(
                    {
                        "user_id": user,
                        "category": category,
                        "window_start": start,
                        "window_end": start + self.size,
                        "views": int(fields.get("views", 0.0)),
                        "clicks": int(fields.get("clicks", 0.0)),
                        "shares": int(fields.get("shares", 0.0)),
                        "saves": int(fields.get("saves", 0.0)),
                        "total_dwell_seconds": total_dwell,
                        "avg_dwell_seconds": total_dwell / dwell_events if dwell_events else None,
                        "affinity_score": fields.get("affinity_score", 0.0),
                    }
                )
        return out


class UserRecentActivity:
    """``user_recent_activity``: events per (user, category) in 1-h windows; recent = end ≥ now − 3 h."""

    name = "user_recent_activity"
    keyed_by = "user_id"

    def __init__(self, settings: Settings) -> None:
        self.size = settings.views.activity_window_seconds
        self.horizon = settings.views.activity_horizon_seconds

    def is_recent(self, start: float, now: float) -> bool:
        return start + self.size >= now - self.horizon

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        if attrs.category is None:
            return
        start = window_start(event.ts, self.size)
        if not self.is_recent(start, now):
            return
        store.window_add(self.name, event.user_id, attrs.category, start, {"recent_interactions": 1.0})

    def expire(self, store: StateStore, now: float) -> None:
        # windows whose end < now - horizon, i.e. start < now - horizon - size
        store.expire_windows(self.name, now - self.horizon - self.size)

    def recent_scores(self, store: StateStore, user_id: str, now: float) -> dict[str, float]:
        scores: dict[str, float] = {}
        for (category, start), fields in store.window_members(self.name, user_id).items():
            if self.is_recent(start, now):
                name = str(category)
                scores[name] = scores.get(name, 0.0) + fields["recent_interactions"]
        return scores

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        return [
            {
                "user_id": user,
                "category": category,
                "window_start": start,
                "window_end": start + self.size,
                "recent_interactions": int(fields["recent_interactions"]),
            }
            for user in users
            for (category, start), fields in store.window_members(self.name, user).items()
            if self.is_recent(start, now)
        ]
