"""``user_brand_profile``: lifetime affinity and purchases per (user, brand)."""

from __future__ import annotations

from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row


class UserBrandProfile:
    name = "user_brand_profile"
    keyed_by = "user_id"

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        brand = attrs.brand
        if brand is None:
            return
        deltas = {"brand_affinity": attrs.weight}
        if event.type == "purchase":
            deltas["purchase_count"] = 1.0
        store.add(self.name, event.user_id, brand, deltas)
        store.put_max(self.name, event.user_id, brand, "last_brand_interaction", event.ts)

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def affinities(self, store: StateStore, user_id: str) -> dict[str, float]:
        return {str(b): f["brand_affinity"] for b, f in store.members(self.name, user_id).items()}

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        return [
            {
                "user_id": user,
                "brand": brand,
                "brand_affinity": fields.get("brand_affinity", 0.0),
                "purchase_count": int(fields.get("purchase_count", 0.0)),
                "last_brand_interaction": fields.get("last_brand_interaction"),
            }
            for user in users
            for brand, fields in store.members(self.name, user).items()
        ]
