"""``co_visits`` in columns: 10-minute co-visit frequencies per (before item, after item).

Every pair of one user's events with ``0 < after.ts − before.ts ≤ window`` counts once (the DataSQRL
self-join, no de-duplication), whatever the arrival order: each event is paired with the user's events
within the window on both sides, read from a timeline of recent events (one array row per event, chained
per user). An event older than the user's newest by more than the allowed lateness cannot find its partners
any more and is left out (``late_events``). The timeline is compacted once most of it is older than every
user's ``newest − window − lateness``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numba
import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import EMPTY, KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import Batch, Bools, Vocabulary, marked


@numba.njit(cache=True)
def _pair(
    user: Any,
    item: Any,
    ts: Any,
    start: int,
    window: float,
    lateness: float,
    head: Any,
    newest: Any,
    line_user: Any,
    line_ts: Any,
    line_item: Any,
    line_prev: Any,
    n_line: int,
    before: Any,
    after: Any,
) -> tuple[int, int, int, int]:
    """Pairs of events ``start..`` into ``before``/``after`` until they are full.

    Returns (next event, timeline length, pairs written, late events)."""
    pairs = 0
    late = 0
    i = start
    while i < len(user):
        u, it, t = user[i], item[i], ts[i]
        if head[u] != EMPTY and t < newest[u] - lateness:
            late += 1
            i += 1
            continue
        # room for every partner of this event, or stop before it
        count = 0
        r = head[u]
        while r != EMPTY:
            if abs(line_ts[r] - t) <= window and line_ts[r] != t:
                count += 1
            r = line_prev[r]
        if pairs + count > len(before):
            break
        r = head[u]
        while r != EMPTY:
            other = line_ts[r]
            if other < t and other >= t - window:
                before[pairs] = line_item[r]
                after[pairs] = it
                pairs += 1
            elif other > t and other <= t + window:
                before[pairs] = it
                after[pairs] = line_item[r]
                pairs += 1
            r = line_prev[r]
        line_user[n_line] = u
        line_ts[n_line] = t
        line_item[n_line] = it
        line_prev[n_line] = head[u]
        if head[u] == EMPTY or t > newest[u]:
            newest[u] = t
        head[u] = n_line
        n_line += 1
        i += 1
    return i, n_line, pairs, late


@numba.njit(cache=True)
def _compact(
    head: Any, newest: Any, span: float, line_user: Any, line_ts: Any, line_item: Any, line_prev: Any, n: int
) -> int:
    """Drop timeline rows older than their user's ``newest − span``; keep each user's order."""
    kept = 0
    head[:] = EMPTY
    for r in range(n):
        u = line_user[r]
        if line_ts[r] < newest[u] - span:
            continue
        line_user[kept] = u
        line_ts[kept] = line_ts[r]
        line_item[kept] = line_item[r]
        line_prev[kept] = head[u]
        head[u] = kept
        kept += 1
    return kept


def _grow(array: Any, size: int, fill: Any = 0) -> Any:
    out = np.full(size, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


class CoVisits:
    """``co_visits``: every pair of one user's events with ``0 < after.ts − before.ts ≤ window``."""

    name = "co_visits"
    keyed_by = "item_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.window = settings.views.co_visit_window_seconds
        self.lateness = settings.views.co_visit_allowed_lateness_seconds
        self.late_events = 0
        self.pairs = KeyTable({"frequency": np.int32})  # (before, after)
        self._head = np.full(64, EMPTY, dtype=np.int32)  # per user: newest timeline row
        self._newest = np.zeros(64, dtype=np.float64)
        self._line: dict[str, Any] = {
            "user": np.zeros(1024, dtype=np.int32),
            "ts": np.zeros(1024, dtype=np.float64),
            "item": np.zeros(1024, dtype=np.int32),
            "prev": np.zeros(1024, dtype=np.int32),
        }
        self._n_line = 0
        self._compacted_at = 0
        self._buffer = 4096

    def apply_batch(self, batch: Batch) -> None:
        users = len(self.vocabulary.users)
        if users > len(self._head):
            size = max(users, 2 * len(self._head))
            self._head = _grow(self._head, size, EMPTY)
            self._newest = _grow(self._newest, size)
        need = self._n_line + batch.n
        if need > len(self._line["user"]):
            size = max(need, 2 * len(self._line["user"]))
            self._line = {k: _grow(v, size) for k, v in self._line.items()}
        line = self._line
        start = 0
        while start < batch.n:
            before = np.empty(self._buffer, dtype=np.int64)
            after = np.empty(self._buffer, dtype=np.int64)
            start, self._n_line, written, late = _pair(
                batch.user, batch.item, batch.ts, start, self.window, self.lateness, self._head,
                self._newest, line["user"], line["ts"], line["item"], line["prev"], self._n_line,
                before, after,
            )  # fmt: skip
            self.late_events += late
            if written:
                rows, _ = self.pairs.upsert(before[:written], after[:written])
                np.add.at(self.pairs.column("frequency"), rows, 1)
            elif start < batch.n:
                self._buffer *= 2  # one event has more partners than the buffer holds

    def expire(self, store: Any, now: float) -> None:
        """Compact the timeline once it has doubled since the last compaction."""
        if self._n_line > max(2 * self._compacted_at, 4096):
            line = self._line
            self._n_line = _compact(
                self._head, self._newest, self.window + self.lateness, line["user"], line["ts"],
                line["item"], line["prev"], self._n_line,
            )  # fmt: skip
            self._compacted_at = self._n_line

    # -- reads --------------------------------------------------------------------------------------
    def ranked(self, store: Any, item_id: str) -> Iterator[tuple[str, float]]:
        """After-items of ``item_id``: frequency desc, item_id asc."""
        before = self.vocabulary.items.get(item_id)
        if before < 0:
            return iter(())
        rows = self.pairs.group(before)
        name = self.vocabulary.items.name
        freq = self.pairs.column("frequency")[rows].tolist()
        entries = [(name(a), float(f)) for a, f in zip(self.pairs.kb[rows].tolist(), freq, strict=True)]
        entries.sort(key=lambda e: (-e[1], e[0]))
        return iter(entries)

    def frequencies(self, store: Any, befores: Sequence[str], after_item: str) -> list[float | None]:
        """The frequency of ``(before, after_item)`` for each of ``befores`` (None when never seen)."""
        ids = self.vocabulary.items
        after = ids.get(after_item)
        a = np.array([ids.get(b) for b in befores], dtype=np.int64)
        if after < 0 or not len(a):
            return [None] * len(befores)
        rows = self.pairs.find(a, np.full(len(a), after, dtype=np.int64))
        freq = self.pairs.column("frequency")
        return [None if r < 0 else float(freq[r]) for r in rows.tolist()]

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        name = self.vocabulary.items.name
        befores = [key] if key is not None else sorted(name(b) for b in self.pairs.firsts().tolist())
        return [
            {"before_item": before, "after_item": after, "frequency": int(frequency)}
            for before in befores
            for after, frequency in self.ranked(store, before)
        ]

    def arrays(self) -> dict[str, Any]:
        n = self._n_line
        return {
            "pairs": self.pairs.arrays(),
            "head": self._head,
            "newest": self._newest,
            "line": {k: v[:n] for k, v in self._line.items()},
            "late_events": self.late_events,
        }

    def load(self, arrays: dict[str, Any]) -> None:
        self.pairs.load(arrays["pairs"])
        self._head = np.array(arrays["head"])
        self._newest = np.array(arrays["newest"])
        self._line = {k: np.array(v) for k, v in arrays["line"].items()}
        self._n_line = self._compacted_at = len(self._line["user"])
        if not self._n_line:
            self._line = {k: np.zeros(1024, dtype=v.dtype) for k, v in self._line.items()}
        self.late_events = int(arrays["late_events"])

    def nbytes(self) -> int:
        line: int = sum(v.nbytes for v in self._line.values())
        return self.pairs.nbytes() + self._head.nbytes + self._newest.nbytes + line

    def used_bytes(self) -> int:
        per_row: int = sum(v.itemsize for v in self._line.values())
        per_user = self._head.itemsize + self._newest.itemsize
        return self.pairs.used_bytes() + self._n_line * per_row + len(self.vocabulary.users) * per_user

    def forget_users(self, dead: Bools) -> None:
        """The users' timeline rows go; the pair counts they added stay (an anonymous aggregate)."""
        inside = np.flatnonzero(dead[: len(self._head)])
        if len(inside):
            self._head[inside] = EMPTY
            self._newest[inside] = 0.0
            self._drop_line(marked(dead, self._line["user"][: self._n_line]))

    def forget_items(self, dead: Bools) -> None:
        """A deleted item's pairs go, both ways, and so do its timeline rows."""
        self.pairs.drop(first=dead, second=dead)
        self._drop_line(marked(dead, self._line["item"][: self._n_line]))

    def _drop_line(self, gone: Bools) -> None:
        if not gone.any():
            return
        line = self._line
        line["ts"][: self._n_line][gone] = -np.inf  # older than any user's newest - span: compacted away
        self._n_line = _compact(
            self._head, self._newest, self.window + self.lateness, line["user"], line["ts"],
            line["item"], line["prev"], self._n_line,
        )  # fmt: skip
        self._compacted_at = self._n_line
