"""``content_trending`` in columns: counters once per 15-minute pane, windows summed at read.

A 2-h window hopping every 15 min is the sum of its 8 panes, so an event updates one pane row instead of
eight window rows. Distinct users stay exact: per ``(item, user)`` a 64-bit mask of the panes the user was
seen in (the newest 64, far more than the retention spans) tells, for a user's first event of a pane, which
of the 8 windows holding that pane had not counted the user yet; those windows' ``unique`` goes up by one.
The current window's rankings (overall and per catalog category) are computed from the panes when first
read after a change and kept until the next batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numba
import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import Batch, Vocabulary


@numba.njit(cache=True)
def _apply_panes(pane_rows: Any, kind: Any, dwell: Any, view: int, click: int, counts: Any) -> None:
    # counts columns: events, views, clicks, dwell events; the dwell total is a float column
    for i in range(len(pane_rows)):
        r = pane_rows[i]
        counts[r, 0] += 1
        if kind[i] == view:
            counts[r, 1] += 1
        elif kind[i] == click:
            counts[r, 2] += 1
        if not np.isnan(dwell[i]):
            counts[r, 3] += 1


@numba.njit(cache=True)
def _seen_panes(
    user_rows: Any, new: Any, pane: Any, first_kept: Any, hops: int, masks: Any, tops: Any, fresh: Any
) -> None:
    """For each event, the window start panes (bit ``h`` of ``fresh[i]``: window ``pane - h``) that now
    count the user for the first time."""
    for i in range(len(user_rows)):
        r, p = user_rows[i], pane[i]
        fresh[i] = 0
        if new[i]:
            masks[r] = 0
            tops[r] = p
        elif p > tops[r]:
            gap = p - tops[r]
            if gap >= 64:
                masks[r] = 0
            else:
                for q in range(tops[r] + 1, p + 1):
                    masks[r] &= ~(np.uint64(1) << np.uint64(q & 63))
            tops[r] = p
        top = tops[r]
        if p <= top - 64:
            continue  # far behind the user's newest pane: outside every retained window
        bit = np.uint64(1) << np.uint64(p & 63)
        if masks[r] & bit:
            continue
        for h in range(hops):
            s = p - h
            if s < first_kept[i]:
                continue
            seen = False
            for q in range(s, s + hops):
                if q != p and q <= top and q > top - 64 and masks[r] & (np.uint64(1) << np.uint64(q & 63)):
                    seen = True
                    break
            if not seen:
                fresh[i] |= 1 << h
        masks[r] |= bit


@numba.njit(cache=True)
def _window_sums(
    ka: Any, kb: Any, n: int, first: int, hops: int, counts: Any, dwell: Any, unique: Any, out: Any
) -> None:
    """Per item: events, views, clicks, dwell events, dwell total and unique users of the window whose
    first pane is ``first`` (``out`` rows indexed by item id)."""
    for r in range(n):
        p = kb[r]
        if p < first or p >= first + hops:
            continue
        item = ka[r]
        for c in range(4):
            out[item, c] += counts[r, c]
        out[item, 4] += dwell[r]
        if p == first:
            out[item, 5] += unique[r]


class ContentTrending:
    """``content_trending``: per item, 2-h windows hopping every 15 min (epoch-aligned)."""

    name = "content_trending"
    keyed_by = "item_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        v = settings.views
        self.vocabulary = vocabulary
        self.size = v.trending_window_seconds
        self.slide = v.trending_slide_seconds
        self.hops = round(self.size / self.slide)
        self.retention = v.trending_retention_seconds
        self.w_view = v.trending_view_weight
        self.w_click = v.trending_click_weight
        self.w_user = v.trending_unique_user_weight
        self.view = vocabulary.types.get("view")
        self.click = vocabulary.types.get("click")
        # (item, pane): the pane's counters, and `unique` of the window whose first pane it is
        self.panes = KeyTable({"counts": (np.int32, 4), "dwell": np.float64, "unique": np.int32})
        self.users = KeyTable({"mask": np.uint64, "top": np.int64})  # (item, user)
        self.catalog: Mapping[str, Any] = {}  # item_id -> catalog item (the engine's catalog)
        self._version = 0
        self._cache: dict[float, _Ranked] = {}

    # -- windows ------------------------------------------------------------------------------------
    def current_window(self, now: float) -> float:
        """Start of the window ending at the first slide boundary strictly after ``now``."""
        end = math.floor(now / self.slide) * self.slide + self.slide
        return end - self.size

    def kept_from(self, now: float) -> float:
        """Windows starting before this have closed more than ``retention`` ago."""
        return now - self.retention - self.size

    def _first_kept(self, now: Any) -> Any:
        return np.ceil((now - self.retention - self.size) / self.slide).astype(np.int64)

    # -- writes -------------------------------------------------------------------------------------
    def apply_batch(self, batch: Batch) -> None:
        pane = np.floor(batch.ts / self.slide).astype(np.int64)
        first_kept = self._first_kept(batch.now)
        kept = pane >= first_kept  # the newest window holding the pane is still kept
        if not kept.any():
            return
        item, user = batch.item[kept], batch.user[kept]
        pane, first_kept = pane[kept], first_kept[kept]
        rows, _ = self.panes.upsert(item, pane)
        _apply_panes(
            rows, batch.kind[kept], batch.dwell[kept], self.view, self.click, self.panes.column("counts")
        )
        dwell = batch.dwell[kept]
        has_dwell = ~np.isnan(dwell)
        np.add.at(self.panes.column("dwell"), rows[has_dwell], dwell[has_dwell])
        user_rows, new = self.users.upsert(item, user)
        fresh = np.zeros(len(rows), dtype=np.int64)
        masks, tops = self.users.column("mask"), self.users.column("top")
        _seen_panes(user_rows, new, pane, first_kept, self.hops, masks, tops, fresh)
        for h in range(self.hops):
            counted = (fresh >> h) & 1 == 1
            if counted.any():
                window_rows, _ = self.panes.upsert(item[counted], pane[counted] - h)
                np.add.at(self.panes.column("unique"), window_rows, 1)
        self._version += 1
        self._cache.clear()

    def expire(self, store: Any, now: float) -> None:
        first = int(self._first_kept(np.float64(now)))
        if self.panes.n and self.panes.kb[: self.panes.n].min() < first:
            self.panes.keep(self.panes.kb[: self.panes.n] >= first)
            self._cache.clear()
        if self.users.n and self.users.column("top")[: self.users.n].min() < first:
            self.users.keep(self.users.column("top")[: self.users.n] >= first)

    # -- reads --------------------------------------------------------------------------------------
    def _sums(self, start: float) -> Any:
        out = np.zeros((len(self.vocabulary.items), 6), dtype=np.float64)
        t = self.panes
        first = round(start / self.slide)
        _window_sums(
            t.ka, t.kb, t.n, first, self.hops, t.column("counts"), t.column("dwell"), t.column("unique"), out
        )
        return out

    def _score(self, sums: Any) -> Any:
        return self.w_view * sums[:, 1] + self.w_click * sums[:, 2] + self.w_user * sums[:, 5]

    def _ranked(self, window: float) -> _Ranked:
        found = self._cache.get(window)
        if found is None:
            sums = self._sums(window)
            scores = self._score(sums)
            items = np.flatnonzero(scores != 0.0)
            name, catalog = self.vocabulary.items.name, self.catalog
            scored = ((name(i), float(scores[i])) for i in items.tolist())
            ranked = sorted((e for e in scored if e[0] in catalog), key=lambda e: (-e[1], e[0]))
            found = self._cache[window] = _Ranked(ranked, catalog)
        return found

    def ranked(self, store: Any, window: float, category: str | None = None) -> Iterator[tuple[str, float]]:
        """Items with a trending score in ``window`` (of a catalog category), score desc, item_id asc."""
        ranked = self._ranked(window)
        return iter(ranked.all if category is None else ranked.of_category(category))

    def score(self, store: Any, window: float, item_id: str) -> float | None:
        return self._ranked(window).scores.get(item_id)

    def size_of(self, store: Any, window: float) -> int:
        return len(self._ranked(window).all)

    def window_row(self, store: Any, item_id: str, start: float) -> Row | None:
        item = self.vocabulary.items.get(item_id)
        if item < 0:
            return None
        rows = self.rows_of_items(np.array([item]), start)
        return rows[0] if rows else None

    def rows_of_items(self, items: Any, start: float) -> list[Row]:
        sums = self._sums(start)
        scores = self._score(sums)
        out = []
        for i in items.tolist():
            events, views, clicks, dwell_events, dwell, unique = sums[i].tolist()
            if not events:
                continue
            out.append(
                {
                    "item_id": self.vocabulary.items.name(i),
                    "window_start": start,
                    "window_end": start + self.size,
                    "recent_views": int(views),
                    "recent_clicks": int(clicks),
                    "unique_users": int(unique),
                    "avg_dwell": dwell / dwell_events if dwell_events else None,
                    "trending_score": float(scores[i]),
                }
            )
        return out

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        t = self.panes
        if key is not None:
            item = self.vocabulary.items.get(key)
            if item < 0:
                return []
            items = np.array([item])
            panes = t.kb[t.group(item)]
        else:
            items = np.unique(t.ka[: t.n])
            panes = t.kb[: t.n]
        if not len(panes):
            return []
        first_kept = int(self._first_kept(np.float64(now)))
        starts = range(max(first_kept, int(panes.min()) - self.hops + 1), int(panes.max()) + 1)
        out: list[Row] = []
        for s in starts:
            out.extend(self.rows_of_items(items, s * self.slide))
        return out

    def arrays(self) -> dict[str, Any]:
        return {"panes": self.panes.arrays(), "users": self.users.arrays()}

    def load(self, arrays: dict[str, Any]) -> None:
        self.panes.load(arrays["panes"])
        self.users.load(arrays["users"])
        self._cache.clear()

    def nbytes(self) -> int:
        return self.panes.nbytes() + self.users.nbytes()

    def used_bytes(self) -> int:
        return self.panes.used_bytes() + self.users.used_bytes()

    def forget_users(self, dead: Any) -> None:
        """The users' (item, user) pane masks go; the counts they added stay: a user who comes back in the
        same window is a new distinct user."""
        if self.users.drop(second=dead):
            self._cache.clear()

    def forget_items(self, dead: Any) -> None:
        """A deleted item's panes and users go."""
        if self.panes.drop(first=dead) + self.users.drop(first=dead):
            self._cache.clear()


class _Ranked:
    """One window's ranking, with per-category lists made on first use."""

    def __init__(self, ranked: list[tuple[str, float]], catalog: Mapping[str, Any]) -> None:
        self.all = ranked
        self.scores = dict(ranked)
        self._catalog = catalog
        self._by_category: dict[str | None, list[tuple[str, float]]] | None = None

    def of_category(self, category: str) -> list[tuple[str, float]]:
        if self._by_category is None:
            grouped: dict[str | None, list[tuple[str, float]]] = {}
            for entry in self.all:
                grouped.setdefault(self._catalog[entry[0]].category, []).append(entry)
            self._by_category = grouped
        return self._by_category.get(category, [])
