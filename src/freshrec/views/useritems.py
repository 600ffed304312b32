"""``user_items``: how often and how strongly each user interacted with each item (lifetime).

The input of collaborative filtering (confidence = summed event-type weights) and of the interest
centroid (interaction counts).
"""

from __future__ import annotations

from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row


class UserItems:
    name = "user_items"
    keyed_by = "user_id"

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        store.add(self.name, event.user_id, event.item_id, {"n": 1.0, "w": attrs.weight})

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def weights(self, store: StateStore, user_id: str) -> dict[str, float]:
        """``item_id -> summed event weight`` of one user."""
        return {str(item): fields["w"] for item, fields in store.members(self.name, user_id).items()}

    def counts(self, store: StateStore, user_id: str) -> dict[str, float]:
        """``item_id -> number of interactions`` of one user."""
        return {str(item): fields["n"] for item, fields in store.members(self.name, user_id).items()}

    def users(self, store: StateStore) -> list[str]:
        """Every user with an interaction."""
        return list(store.keys(self.name))

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        return [
            {"user_id": user, "item_id": str(item), "interactions": int(f["n"]), "weight": f["w"]}
            for user in users
            for item, f in store.members(self.name, user).items()
        ]
