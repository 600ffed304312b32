"""Per-user lifetime views in columns: brand profile, price-tier sensitivity, and items interacted with."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import NONE, Batch, OneTable, Vocabulary, rows_of_user


@numba.njit(cache=True)
def _apply_brand(
    rows: Any, new: Any, kind: Any, weight: Any, ts: Any, purchase: int, affinity: Any, bought: Any, last: Any
) -> None:
    for i in range(len(rows)):
        r = rows[i]
        affinity[r] += weight[i]
        if kind[i] == purchase:
            bought[r] += 1
        last[r] = ts[i] if new[i] else max(last[r], ts[i])


class UserBrandProfile(OneTable):
    """``user_brand_profile``: lifetime affinity and purchases per (user, brand)."""

    name = "user_brand_profile"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.purchase = vocabulary.types.get("purchase")
        self.table = KeyTable({"affinity": np.float64, "purchases": np.int32, "last": np.float64})

    def apply_batch(self, batch: Batch) -> None:
        has = batch.brand != NONE
        if not has.any():
            return
        rows, new = self.table.upsert(batch.user[has], batch.brand[has])
        t = self.table
        _apply_brand(
            rows,
            new,
            batch.kind[has],
            batch.weight[has],
            batch.ts[has],
            self.purchase,
            t.column("affinity"),
            t.column("purchases"),
            t.column("last"),
        )

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    def affinities(self, store: Any, user_id: str) -> dict[str, float]:
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return {}
        rows = self.table.group(user)
        name = self.vocabulary.brands.name
        values = self.table.column("affinity")[rows].tolist()
        return {name(b): a for b, a in zip(self.table.kb[rows].tolist(), values, strict=True)}

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t, v = self.table, self.vocabulary
        return [
            {
                "user_id": v.users.name(int(t.ka[r])),
                "brand": v.brands.name(int(t.kb[r])),
                "brand_affinity": float(t.column("affinity")[r]),
                "purchase_count": int(t.column("purchases")[r]),
                "last_brand_interaction": float(t.column("last")[r]),
            }
            for r in rows_of_user(t, v, key).tolist()
        ]


class UserPriceSensitivity(OneTable):
    """``user_price_sensitivity``: views, purchases and conversion per (user, price tier)."""

    name = "user_price_sensitivity"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.view = vocabulary.types.get("view")
        self.purchase = vocabulary.types.get("purchase")
        self.table = KeyTable({"views": np.int32, "purchases": np.int32})

    def apply_batch(self, batch: Batch) -> None:
        has = batch.tier != NONE
        if not has.any():
            return
        rows, _ = self.table.upsert(batch.user[has], batch.tier[has])
        kind = batch.kind[has]
        np.add.at(self.table.column("views"), rows[kind == self.view], 1)
        np.add.at(self.table.column("purchases"), rows[kind == self.purchase], 1)

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    def conversion_rates(self, store: Any, user_id: str) -> dict[str, float | None]:
        """Conversion per tier: purchases / views, None when there were no views."""
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return {}
        t = self.table
        rows = t.group(user)
        out: dict[str, float | None] = {}
        for tier, views, bought in zip(
            t.kb[rows].tolist(),
            t.column("views")[rows].tolist(),
            t.column("purchases")[rows].tolist(),
            strict=True,
        ):
            out[self.vocabulary.tiers.name(tier)] = bought / views if views else None
        return out

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t, v = self.table, self.vocabulary
        out: list[Row] = []
        for r in rows_of_user(t, v, key).tolist():
            views, bought = int(t.column("views")[r]), int(t.column("purchases")[r])
            out.append(
                {
                    "user_id": v.users.name(int(t.ka[r])),
                    "price_tier": v.tiers.name(int(t.kb[r])),
                    "views": views,
                    "purchases": bought,
                    "conversion_rate": bought / views if views else None,
                }
            )
        return out


class UserItems(OneTable):
    """``user_items``: interactions and summed event weights per (user, item), lifetime (CF's input)."""

    name = "user_items"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.table = KeyTable({"n": np.int32, "w": np.float64})

    def apply_batch(self, batch: Batch) -> None:
        rows, _ = self.table.upsert(batch.user, batch.item)
        np.add.at(self.table.column("n"), rows, 1)
        np.add.at(self.table.column("w"), rows, batch.weight)

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    def _of(self, user_id: str, column: str) -> dict[str, float]:
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return {}
        t = self.table
        rows = t.group(user)[::-1]
        name = self.vocabulary.items.name
        values = t.column(column)[rows].astype(np.float64).tolist()
        return {name(i): x for i, x in zip(t.kb[rows].tolist(), values, strict=True)}

    def weights(self, store: Any, user_id: str) -> dict[str, float]:
        """``item_id -> summed event weight`` of one user."""
        return self._of(user_id, "w")

    def counts(self, store: Any, user_id: str) -> dict[str, float]:
        """``item_id -> number of interactions`` of one user."""
        return self._of(user_id, "n")

    def users(self, store: Any) -> list[str]:
        """Every user with an interaction."""
        name = self.vocabulary.users.name
        return sorted(name(u) for u in self.table.firsts().tolist())

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t, v = self.table, self.vocabulary
        return [
            {
                "user_id": v.users.name(int(t.ka[r])),
                "item_id": v.items.name(int(t.kb[r])),
                "interactions": int(t.column("n")[r]),
                "weight": float(t.column("w")[r]),
            }
            for r in rows_of_user(t, v, key).tolist()
        ]
