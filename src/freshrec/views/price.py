"""``user_price_sensitivity``: views, purchases and conversion per (user, price tier)."""

from __future__ import annotations

from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row


class UserPriceSensitivity:
    name = "user_price_sensitivity"
    keyed_by = "user_id"

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        tier = attrs.tier
        if tier is None:
            return
        deltas = {"events": 1.0}
        if event.type == "view":
            deltas["views"] = 1.0
        elif event.type == "purchase":
            deltas["purchases"] = 1.0
        store.add(self.name, event.user_id, tier, deltas)

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def conversion_rates(self, store: StateStore, user_id: str) -> dict[str, float | None]:
        """Conversion per tier: purchases / views, None when there were no views."""
        out: dict[str, float | None] = {}
        for tier, fields in store.members(self.name, user_id).items():
            views = fields.get("views", 0.0)
            out[str(tier)] = fields.get("purchases", 0.0) / views if views else None
        return out

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else store.keys(self.name)
        out: list[Row] = []
        for user in users:
            for tier, fields in store.members(self.name, user).items():
                views = int(fields.get("views", 0.0))
                purchases = int(fields.get("purchases", 0.0))
                out.append(
                    {
                        "user_id": user,
                        "price_tier": tier,
                        "views": views,
                        "purchases": purchases,
                        "conversion_rate": purchases / views if views else None,
                    }
                )
        return out
