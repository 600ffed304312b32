"""``user_history``: each user's last N interactions and the set of items they purchased."""

from __future__ import annotations

from freshrec.config import Settings
from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row

PURCHASES = "user_purchases"


class UserHistory:
    name = "user_history"
    keyed_by = "user_id"

    def __init__(self, settings: Settings) -> None:
        self.cap = settings.views.history_length

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        # ordered by (timestamp, event_id) so that any arrival order keeps the same last N
        store.push_bounded(
            self.name,
            event.user_id,
            (event.ts, event.event_id),
            (event.item_id, event.type, event.ts, event.event_id),
            self.cap,
        )
        if event.type == "purchase":
            store.set_add(PURCHASES, event.user_id, event.item_id)

    def expire(self, store: StateStore, now: float) -> None:
        """Bounded by length, not by time."""

    def purchased(self, store: StateStore, user_id: str) -> frozenset[str] | set[str]:
        return store.set_members(PURCHASES, user_id)

    def recent_items(self, store: StateStore, user_id: str) -> list[tuple[str, str, float]]:
        return [(item, kind, ts) for item, kind, ts, _ in store.bounded(self.name, user_id)]

    def has_history(self, store: StateStore, user_id: str) -> bool:
        return bool(store.bounded(self.name, user_id))

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        return [
            {"user_id": user, "event_id": event_id, "item_id": item, "type": kind, "timestamp": ts}
            for user in users
            for item, kind, ts, event_id in store.bounded(self.name, user)
        ]
