"""``user_price_tier_drift``: a user's recent price-tier mix against the weeks before it.

Events with a resolved price (the event's own, else the catalog's) are summed per (user, tier, UTC day) by
their SPEC event weight. With ``d`` the day holding "now", the *recent* window is the days ``d-6 .. d``
and the *baseline* the 30 days before them (``d-36 .. d-7``; both lengths are settings). A tier's share of
a window is its weight over the user's weight in that window (null when the window has no events); the
change is recent share − baseline share (a tier absent from a window has share 0 there). ``drifting_to``
is the tier whose share rose most (ties: the cheaper tier) when it rose by at least 0.2 and the user has
at least 5 recent events; otherwise null, and always null without a baseline. Read as SQL::

    WITH d AS (SELECT user_id, price_tier AS tier, floor(ts / 86400) AS day, weight FROM resolved
               WHERE price IS NOT NULL AND floor(ts / 86400) >= floor(now / 86400) - 36),
         agg AS (SELECT user_id, tier,
                   coalesce(sum(weight) FILTER (WHERE day >= floor(now / 86400) - 6), 0) AS recent_weight,
                   count(*) FILTER (WHERE day >= floor(now / 86400) - 6) AS recent_events,
                   coalesce(sum(weight) FILTER (WHERE day < floor(now / 86400) - 6), 0) AS baseline_weight,
                   count(*) FILTER (WHERE day < floor(now / 86400) - 6) AS baseline_events
                 FROM d GROUP BY 1, 2)
    SELECT *, recent_weight / sum(recent_weight) OVER (PARTITION BY user_id) AS recent_share,
              baseline_weight / sum(baseline_weight) OVER (PARTITION BY user_id) AS baseline_share,
              recent_share - baseline_share AS share_change  -- and drifting_to per user, as above
    FROM agg
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import NONE, Batch, OneTable, Vocabulary, rows_of_user
from freshrec.views.columnar.category import WINDOW_BITS, WINDOW_MASK

DAY = 86_400.0
#: float slack on the share-change threshold (shares are ratios of sums)
EPSILON = 1e-9


@dataclass(slots=True)
class TierMix:
    """One user's weights and event counts per tier in the two windows."""

    recent_weight: dict[str, float]
    recent_events: dict[str, int]
    baseline_weight: dict[str, float]
    baseline_events: dict[str, int]


@dataclass(frozen=True, slots=True)
class Drift:
    """Where a user's tier mix is moving: ``drifting_to`` (or None) and that tier's share change."""

    drifting_to: str | None
    share_change: float


class UserPriceTierDrift(OneTable):
    name = "user_price_tier_drift"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        views = settings.views
        self.recent_days = views.tier_drift_recent_days
        self.baseline_days = views.tier_drift_baseline_days
        self.min_change = views.tier_drift_min_change
        self.min_events = views.tier_drift_min_recent_events
        self.tiers = vocabulary.tiers.names()
        self.table = KeyTable({"weight": np.float64, "events": np.int32})  # (user, tier · 2^32 + day)

    def _oldest_day(self, now: Any) -> Any:
        return np.floor(now / DAY) - (self.recent_days + self.baseline_days - 1)

    def apply_batch(self, batch: Batch) -> None:
        day = np.floor(batch.ts / DAY).astype(np.int64)
        keep = (batch.tier != NONE) & (day >= self._oldest_day(batch.now))
        if not keep.any():
            return
        rows, _ = self.table.upsert(batch.user[keep], (batch.tier[keep] << WINDOW_BITS) | day[keep])
        np.add.at(self.table.column("weight"), rows, batch.weight[keep])
        np.add.at(self.table.column("events"), rows, 1)

    def expire(self, store: Any, now: float) -> None:
        if self.table.n:
            self.table.keep((self.table.keys()[1] & WINDOW_MASK) >= self._oldest_day(now))

    # -- reads --------------------------------------------------------------------------------------
    def _mixes(self, user_id: str | None, now: float) -> dict[int, TierMix]:
        t = self.table
        rows = rows_of_user(t, self.vocabulary, user_id)
        first_recent = int(np.floor(now / DAY)) - (self.recent_days - 1)
        oldest = int(self._oldest_day(now))
        names = self.tiers
        mixes: dict[int, TierMix] = {}
        weights, events = t.column("weight")[rows].tolist(), t.column("events")[rows].tolist()
        for user, packed, weight, count in zip(
            t.ka[rows].tolist(), t.kb[rows].tolist(), weights, events, strict=True
        ):
            day = packed & WINDOW_MASK
            if day < oldest:
                continue
            mix = mixes.get(user)
            if mix is None:
                mix = mixes[user] = TierMix({}, {}, {}, {})
            tier = names[packed >> WINDOW_BITS]
            if day >= first_recent:
                mix.recent_weight[tier] = mix.recent_weight.get(tier, 0.0) + weight
                mix.recent_events[tier] = mix.recent_events.get(tier, 0) + count
            else:
                mix.baseline_weight[tier] = mix.baseline_weight.get(tier, 0.0) + weight
                mix.baseline_events[tier] = mix.baseline_events.get(tier, 0) + count
        return mixes

    def _tier_rows(self, mix: TierMix) -> list[Row]:
        recent_total = sum(mix.recent_weight.values())
        baseline_total = sum(mix.baseline_weight.values())
        has_recent = bool(mix.recent_events)
        has_baseline = bool(mix.baseline_events)
        out: list[Row] = []
        for tier in self.tiers:
            if tier not in mix.recent_events and tier not in mix.baseline_events:
                continue
            recent = mix.recent_weight.get(tier, 0.0) / recent_total if has_recent and recent_total else None
            baseline = (
                mix.baseline_weight.get(tier, 0.0) / baseline_total
                if has_baseline and baseline_total
                else None
            )
            out.append(
                {
                    "price_tier": tier,
                    "recent_weight": mix.recent_weight.get(tier, 0.0),
                    "recent_events": mix.recent_events.get(tier, 0),
                    "baseline_weight": mix.baseline_weight.get(tier, 0.0),
                    "baseline_events": mix.baseline_events.get(tier, 0),
                    "recent_share": recent,
                    "baseline_share": baseline,
                    "share_change": None if recent is None or baseline is None else recent - baseline,
                }
            )
        return out

    def _drift_of(self, mix: TierMix, tier_rows: list[Row]) -> Drift:
        if sum(mix.recent_events.values()) < self.min_events:
            return Drift(None, 0.0)
        best: Row | None = None
        for row in tier_rows:  # in tier order: the first of equal changes is the cheaper tier
            change = row["share_change"]
            if change is not None and (best is None or change > best["share_change"]):
                best = row
        if best is None or best["share_change"] < self.min_change - EPSILON:
            return Drift(None, 0.0)
        return Drift(best["price_tier"], float(best["share_change"]))

    def drift(self, store: Any, user_id: str, now: float) -> Drift:
        """Where ``user_id``'s tier mix is moving at ``now``."""
        mix = self._mixes(user_id, now).get(self.vocabulary.users.get(user_id))
        if mix is None:
            return Drift(None, 0.0)
        return self._drift_of(mix, self._tier_rows(mix))

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        names = self.vocabulary.users.name
        out: list[Row] = []
        for user, mix in self._mixes(key, now).items():
            tier_rows = self._tier_rows(mix)
            drift = self._drift_of(mix, tier_rows)
            user_id = names(user)
            out.extend({"user_id": user_id, **row, "drifting_to": drift.drifting_to} for row in tier_rows)
        return out
