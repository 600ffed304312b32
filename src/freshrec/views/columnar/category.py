"""Per-user category views in columns: lifetime profile, 7-day windows, recent (1-h window) activity.

Rows are keyed by ``(user, category)``, or ``(user, category · 2^32 + window number)`` for the windowed
views; every batch is applied by one compiled loop, in event order, with the semantics of SPEC §3.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import NONE, Batch, OneTable, Vocabulary, rows_of_user

WINDOW_BITS = 32
WINDOW_MASK = (1 << WINDOW_BITS) - 1


@numba.njit(cache=True)
def _apply_profile(
    rows: Any,
    new: Any,
    first_item: Any,
    kind: Any,
    weight: Any,
    ts: Any,
    affinity: Any,
    counts: Any,
    unique: Any,
    last: Any,
    decayed: Any,
    reference: Any,
    half_life: float,
) -> None:
    for i in range(len(rows)):
        r, w, t = rows[i], weight[i], ts[i]
        affinity[r] += w
        counts[r, kind[i]] += 1
        if first_item[i]:
            unique[r] += 1
        if new[i]:
            last[r] = t
            decayed[r] = w
            reference[r] = t
            continue
        last[r] = max(last[r], t)
        # kept as (value at the reference time, reference = latest event time): exact in any order
        if t >= reference[r]:
            decayed[r] = decayed[r] * 2.0 ** (-(t - reference[r]) / half_life) + w
            reference[r] = t
        else:
            decayed[r] += w * 2.0 ** (-(reference[r] - t) / half_life)


class UserCategoryProfile:
    """``user_category_profile``: lifetime and 30-day-decayed affinity per (user, category)."""

    name = "user_category_profile"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.half_life = settings.views.decay_half_life_seconds
        self.types = list(settings.events.weights)
        width = len(self.types)
        self.table = KeyTable(
            {
                "affinity": np.float64,
                "counts": (np.int32, width),
                "unique": np.int32,
                "last": np.float64,
                "decayed": np.float64,
                "reference": np.float64,
            }
        )
        self.items = KeyTable({})  # (user, category · 2^32 + item): the distinct items

    def apply_batch(self, batch: Batch) -> None:
        has = batch.category != NONE
        if not has.any():
            return
        user, category, item = batch.user[has], batch.category[has], batch.item[has]
        _, first_item = self.items.upsert(user, (category << WINDOW_BITS) | item)
        rows, new = self.table.upsert(user, category)
        t = self.table
        _apply_profile(
            rows,
            new,
            first_item,
            batch.kind[has],
            batch.weight[has],
            batch.ts[has],
            t.column("affinity"),
            t.column("counts"),
            t.column("unique"),
            t.column("last"),
            t.column("decayed"),
            t.column("reference"),
            self.half_life,
        )

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    def affinities(self, store: Any, user_id: str) -> dict[str, float]:
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return {}
        rows = self.table.group(user)
        names = self.vocabulary.categories.name
        affinity = self.table.column("affinity")
        return {names(int(c)): float(a) for c, a in zip(self.table.kb[rows], affinity[rows], strict=True)}

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t, v = self.table, self.vocabulary
        rows = rows_of_user(t, v, key)
        users, categories = t.ka[rows], t.kb[rows]
        counts = t.column("counts")[rows]
        decayed = t.column("decayed")[rows] * np.exp2(-(now - t.column("reference")[rows]) / self.half_life)
        out: list[Row] = []
        for j, r in enumerate(rows.tolist()):
            row: Row = {
                "user_id": v.users.name(int(users[j])),
                "category": v.categories.name(int(categories[j])),
                "affinity_score": float(t.column("affinity")[r]),
                "decayed_affinity": float(decayed[j]),
                "unique_items_interacted": int(t.column("unique")[r]),
                "last_engaged_at": float(t.column("last")[r]),
            }
            row.update({f"{k}_count": int(counts[j, n]) for n, k in enumerate(self.types)})
            out.append(row)
        return out

    def arrays(self) -> dict[str, Any]:
        return {"table": self.table.arrays(), "items": self.items.arrays()}

    def load(self, arrays: dict[str, Any]) -> None:
        self.table.load(arrays["table"])
        self.items.load(arrays["items"])

    def nbytes(self) -> int:
        return self.table.nbytes() + self.items.nbytes()

    def used_bytes(self) -> int:
        return self.table.used_bytes() + self.items.used_bytes()

    def forget_users(self, dead: Any) -> None:
        self.table.drop(first=dead)
        self.items.drop(first=dead)

    def forget_items(self, dead: Any) -> None:
        """A user's distinct items are the user's history: a deleted item still counts for them."""


@numba.njit(cache=True)
def _apply_weekly(
    rows: Any,
    kind: Any,
    dwell: Any,
    counts: Any,
    score_of: Any,
    affinity: Any,
    dwell_total: Any,
    dwell_events: Any,
    counted: Any,
) -> None:
    for i in range(len(rows)):
        r, k = rows[i], kind[i]
        slot = counted[k]
        if slot >= 0:
            counts[r, slot] += 1
        affinity[r] += score_of[k]
        if not np.isnan(dwell[i]):
            dwell_total[r] += dwell[i]
            dwell_events[r] += 1


#: the event types ``user_category_affinity`` counts, in the order of its ``counts`` column
WEEKLY_COUNTS = (("view", "views"), ("click", "clicks"), ("share", "shares"), ("save", "saves"))


class UserCategoryAffinity(OneTable):
    """``user_category_affinity``: per (user, category) in 7-day tumbling windows, last 4 kept."""

    name = "user_category_affinity"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.size = settings.views.category_window_seconds
        self.kept = settings.views.category_windows_kept
        types = list(settings.events.weights)
        scores = settings.views.category_window_types
        self.score_of = np.array([scores.get(t, 0.0) for t in types], dtype=np.float64)
        counted = {t: n for n, (t, _) in enumerate(WEEKLY_COUNTS)}
        self.counted = np.array([counted.get(t, -1) for t in types], dtype=np.int64)
        self.table = KeyTable(
            {
                "counts": (np.int32, len(WEEKLY_COUNTS)),
                "affinity": np.float64,
                "dwell_total": np.float64,
                "dwell_events": np.int32,
            }
        )

    def _number(self, ts: Any) -> Any:
        return np.floor(ts / self.size).astype(np.int64)

    def oldest_kept(self, now: float) -> float:
        return float(np.floor(now / self.size) * self.size - (self.kept - 1) * self.size)

    def current(self, now: float) -> float:
        return float(np.floor(now / self.size) * self.size)

    def apply_batch(self, batch: Batch) -> None:
        number = self._number(batch.ts)
        oldest = np.floor(batch.now / self.size) - (self.kept - 1)
        keep = (batch.category != NONE) & (number >= oldest)
        if not keep.any():
            return
        rows, _ = self.table.upsert(batch.user[keep], (batch.category[keep] << WINDOW_BITS) | number[keep])
        t = self.table
        _apply_weekly(
            rows,
            batch.kind[keep],
            batch.dwell[keep],
            t.column("counts"),
            self.score_of,
            t.column("affinity"),
            t.column("dwell_total"),
            t.column("dwell_events"),
            self.counted,
        )

    def expire(self, store: Any, now: float) -> None:
        oldest = round(self.oldest_kept(now) / self.size)
        if self.table.n:
            self.table.keep((self.table.keys()[1] & WINDOW_MASK) >= oldest)

    def current_affinities(self, store: Any, user_id: str, now: float) -> dict[str, float]:
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return {}
        rows = self.table.group(user)
        keys = self.table.kb[rows]
        current = round(self.current(now) / self.size)
        here = (keys & WINDOW_MASK) == current
        names = self.vocabulary.categories.name
        affinity = self.table.column("affinity")[rows[here]]
        return {names(int(k >> WINDOW_BITS)): float(a) for k, a in zip(keys[here], affinity, strict=True)}

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t, v = self.table, self.vocabulary
        rows = rows_of_user(t, v, key)
        oldest = round(self.oldest_kept(now) / self.size)
        keys = t.kb[rows]
        rows = rows[(keys & WINDOW_MASK) >= oldest]
        out: list[Row] = []
        for r in rows.tolist():
            packed = int(t.kb[r])
            start = (packed & WINDOW_MASK) * self.size
            counts = t.column("counts")[r]
            events = int(t.column("dwell_events")[r])
            total = float(t.column("dwell_total")[r])
            out.append(
                {
                    "user_id": v.users.name(int(t.ka[r])),
                    "category": v.categories.name(packed >> WINDOW_BITS),
                    "window_start": start,
                    "window_end": start + self.size,
                    **{name: int(counts[n]) for n, (_, name) in enumerate(WEEKLY_COUNTS)},
                    "total_dwell_seconds": total,
                    "avg_dwell_seconds": total / events if events else None,
                    "affinity_score": float(t.column("affinity")[r]),
                }
            )
        return out


class UserRecentActivity(OneTable):
    """``user_recent_activity``: events per (user, category) in 1-h windows; recent = end ≥ now − 3 h."""

    name = "user_recent_activity"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.size = settings.views.activity_window_seconds
        self.horizon = settings.views.activity_horizon_seconds
        self.table = KeyTable({"count": np.int32})

    def is_recent(self, start: float, now: float) -> bool:
        return start + self.size >= now - self.horizon

    def apply_batch(self, batch: Batch) -> None:
        number = np.floor(batch.ts / self.size).astype(np.int64)
        keep = (batch.category != NONE) & (number * self.size + self.size >= batch.now - self.horizon)
        if not keep.any():
            return
        rows, _ = self.table.upsert(batch.user[keep], (batch.category[keep] << WINDOW_BITS) | number[keep])
        np.add.at(self.table.column("count"), rows, 1)

    def expire(self, store: Any, now: float) -> None:
        if self.table.n:
            starts = (self.table.keys()[1] & WINDOW_MASK) * self.size
            self.table.keep(starts >= now - self.horizon - self.size)

    def recent_scores(self, store: Any, user_id: str, now: float) -> dict[str, float]:
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return {}
        rows = self.table.group(user)
        scores: dict[str, float] = {}
        names = self.vocabulary.categories.name
        counts = self.table.column("count")[rows].tolist()
        for packed, count in zip(self.table.kb[rows].tolist(), counts, strict=True):
            if self.is_recent((packed & WINDOW_MASK) * self.size, now):
                name = names(packed >> WINDOW_BITS)
                scores[name] = scores.get(name, 0.0) + float(count)
        return scores

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t, v = self.table, self.vocabulary
        out: list[Row] = []
        for r in rows_of_user(t, v, key).tolist():
            packed = int(t.kb[r])
            start = (packed & WINDOW_MASK) * self.size
            if not self.is_recent(start, now):
                continue
            out.append(
                {
                    "user_id": v.users.name(int(t.ka[r])),
                    "category": v.categories.name(packed >> WINDOW_BITS),
                    "window_start": start,
                    "window_end": start + self.size,
                    "recent_interactions": int(t.column("count")[r]),
                }
            )
        return out
