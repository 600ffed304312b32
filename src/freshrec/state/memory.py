"""The embedded state back end: plain dictionaries in this process (``memory://``).

Durability is not this module's job: the data directory's log and snapshots (:mod:`freshrec.storage`)
rebuild it after a restart.
"""

from __future__ import annotations

import bisect
import math
import pickle
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from freshrec.state.base import Fields, LogGap
from freshrec.state.ranking import Ranking
from freshrec.state.seen import SeenIds

_Counters = dict[str, dict[Hashable, dict[str, float]]]
_Windows = dict[str, dict[tuple[Hashable, float], dict[str, float]]]


class MemoryState:
    """All state primitives of :class:`freshrec.state.base.StateStore` in process memory."""

    def __init__(self) -> None:
        self._counters: dict[str, _Counters] = defaultdict(dict)
        self._decayed: dict[str, dict[str, dict[tuple[Hashable, str], list[float]]]] = defaultdict(dict)
        self._windows: dict[str, _Windows] = defaultdict(dict)
        self._window_keys: dict[str, dict[float, set[str]]] = defaultdict(dict)
        self._distinct: dict[str, dict[str, dict[tuple[Hashable, float | None], set[Hashable]]]] = (
            defaultdict(dict)
        )
        self._rankings: dict[str, dict[Hashable, Ranking]] = defaultdict(dict)
        self._window_rankings: dict[str, dict[float, set[Hashable]]] = defaultdict(dict)
        self._bounded: dict[str, dict[str, list[tuple[Any, Any]]]] = defaultdict(dict)
        self._sets: dict[str, dict[str, set[str]]] = defaultdict(dict)
        self._timelines: dict[str, dict[str, list[tuple[float, int, str]]]] = defaultdict(dict)
        self._timeline_seq = 0
        self.seen_ids = SeenIds()
        self._docs: dict[str, dict[str, bytes]] = defaultdict(dict)
        self._logs: dict[str, list[bytes]] = defaultdict(list)

    # -- batches ------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Writes apply at once in memory; the engine serialises batches."""

    def commit(self) -> None:
        """Nothing to flush in memory."""

    # -- counters -----------------------------------------------------------------------------------
    def add(self, ns: str, key: str, member: Hashable, deltas: Fields) -> None:
        by_member = self._counters[ns].get(key)
        if by_member is None:
            by_member = self._counters[ns][key] = {}
        current = by_member.get(member)
        if current is None:
            by_member[member] = dict(deltas)
            return
        for name, delta in deltas.items():
            current[name] = current.get(name, 0.0) + delta

    def put_max(self, ns: str, key: str, member: Hashable, field: str, value: float) -> None:
        by_member = self._counters[ns].setdefault(key, {})
        current = by_member.setdefault(member, {})
        old = current.get(field)
        if old is None or value > old:
            current[field] = value

    def add_decayed(
        self, ns: str, key: str, member: Hashable, field: str, value: float, ts: float, half_life: float
    ) -> None:
        # Kept as (value as of reference time, reference time); the reference is the latest event time,
        # so an out-of-order event is decayed to it and a newer one moves it forward — exact either way.
        sums = self._decayed[ns].setdefault(key, {})
        entry = sums.get((member, field))
        if entry is None:
            sums[(member, field)] = [value, ts]
        elif ts >= entry[1]:
            entry[0] = entry[0] * math.pow(2.0, -(ts - entry[1]) / half_life) + value
            entry[1] = ts
        else:
            entry[0] += value * math.pow(2.0, -(entry[1] - ts) / half_life)

    def read_decayed(
        self, ns: str, key: str, member: Hashable, field: str, now: float, half_life: float
    ) -> float:
        entry = self._decayed[ns].get(key, {}).get((member, field))
        if entry is None:
            return 0.0
        return entry[0] * math.pow(2.0, -(now - entry[1]) / half_life)

    def fields(self, ns: str, key: str, member: Hashable) -> Fields | None:
        by_member = self._counters[ns].get(key)
        return None if by_member is None else by_member.get(member)

    def fields_of_keys(self, ns: str, keys: Sequence[str], member: Hashable) -> list[Fields | None]:
        return [self.fields(ns, key, member) for key in keys]

    def members(self, ns: str, key: str) -> Mapping[Hashable, Fields]:
        return self._counters[ns].get(key, {})

    def keys(self, ns: str) -> Iterable[str]:
        found: set[str] = set(self._counters[ns])
        found.update(self._decayed[ns], self._windows[ns], self._bounded[ns], self._sets[ns])
        return sorted(found)

    # -- windowed counters --------------------------------------------------------------------------
    def window_add(self, ns: str, key: str, member: Hashable, window_start: float, deltas: Fields) -> None:
        by_window = self._windows[ns].get(key)
        if by_window is None:
            by_window = self._windows[ns][key] = {}
        slot = (member, window_start)
        current = by_window.get(slot)
        if current is None:
            by_window[slot] = dict(deltas)
            index = self._window_keys[ns]
            keys = index.get(window_start)
            if keys is None:
                index[window_start] = {key}
            else:
                keys.add(key)
            return
        for name, delta in deltas.items():
            current[name] = current.get(name, 0.0) + delta

    def window_members(self, ns: str, key: str) -> Mapping[tuple[Hashable, float], Fields]:
        return self._windows[ns].get(key, {})

    def window_keys(self, ns: str, window_start: float) -> Iterable[str]:
        return self._window_keys[ns].get(window_start, ())

    def window_starts(self, ns: str) -> Iterable[float]:
        return sorted(self._window_keys[ns])

    def expire_windows(self, ns: str, before: float) -> None:
        index = self._window_keys[ns]
        for start in [s for s in index if s < before]:
            for key in index.pop(start):
                windows = self._windows[ns].get(key)
                if windows is not None:
                    for slot in [s for s in windows if s[1] == start]:
                        del windows[slot]
                    if not windows:
                        del self._windows[ns][key]
                distinct = self._distinct[ns].get(key)
                if distinct is not None:
                    for slot2 in [s for s in distinct if s[1] == start]:
                        del distinct[slot2]
                    if not distinct:
                        del self._distinct[ns][key]
        rankings = self._window_rankings[ns]
        for start in [s for s in rankings if s < before]:
            for name in rankings.pop(start):
                self._rankings[ns].pop(name, None)

    # -- distinct sets ------------------------------------------------------------------------------
    def add_distinct(
        self, ns: str, key: str, member: Hashable, value: Hashable, window_start: float | None = None
    ) -> bool:
        by_slot = self._distinct[ns].get(key)
        if by_slot is None:
            by_slot = self._distinct[ns][key] = {}
        slot = (member, window_start)
        values = by_slot.get(slot)
        if values is None:
            by_slot[slot] = {value}
            if window_start is not None:
                self._window_keys[ns].setdefault(window_start, set()).add(key)
            return True
        if value in values:
            return False
        values.add(value)
        return True

    def add_distinct_windows(
        self, ns: str, key: str, member: Hashable, value: Hashable, window_starts: Sequence[float]
    ) -> list[bool]:
        return [self.add_distinct(ns, key, member, value, start) for start in window_starts]

    def count_distinct(self, ns: str, key: str, member: Hashable, window_start: float | None = None) -> int:
        values = self._distinct[ns].get(key, {}).get((member, window_start))
        return 0 if values is None else len(values)

    # -- rankings -----------------------------------------------------------------------------------
    def rank_add(
        self, ns: str, ranking: Hashable, member: str, delta: float, window_start: float | None = None
    ) -> None:
        rankings = self._rankings[ns]
        target = rankings.get(ranking)
        if target is None:
            target = rankings[ranking] = Ranking()
            if window_start is not None:
                self._window_rankings[ns].setdefault(window_start, set()).add(ranking)
        target.add(member, delta)

    def rank_score(self, ns: str, ranking: Hashable, member: str) -> float | None:
        target = self._rankings[ns].get(ranking)
        return None if target is None else target.score(member)

    def rank_scores(self, ns: str, rankings: Sequence[Hashable], member: str) -> list[float | None]:
        return [self.rank_score(ns, ranking, member) for ranking in rankings]

    def rank_iter(self, ns: str, ranking: Hashable) -> Iterator[tuple[str, float]]:
        target = self._rankings[ns].get(ranking)
        if target is None:
            return iter(())
        return target.iter_desc()

    def rank_names(self, ns: str) -> Iterable[Hashable]:
        return list(self._rankings[ns])

    def rank_size(self, ns: str, ranking: Hashable) -> int:
        target = self._rankings[ns].get(ranking)
        return 0 if target is None else len(target)

    def rank_remove(self, ns: str, ranking: Hashable, member: str) -> None:
        target = self._rankings[ns].get(ranking)
        if target is not None:
            target.remove(member)

    # -- bounded lists ------------------------------------------------------------------------------
    def push_bounded(self, ns: str, key: str, sort_key: Any, value: Any, cap: int) -> None:
        entries = self._bounded[ns].get(key)
        if entries is None:
            self._bounded[ns][key] = [(sort_key, value)]
            return
        if len(entries) >= cap and sort_key <= entries[0][0]:
            return
        # ascending by sort key; the smallest is evicted first and, among equal keys, the newest
        bisect.insort_left(entries, (sort_key, value), key=lambda e: e[0])
        if len(entries) > cap:
            del entries[0]

    def bounded(self, ns: str, key: str) -> Sequence[Any]:
        return [value for _, value in reversed(self._bounded[ns].get(key, ()))]

    # -- sets ---------------------------------------------------------------------------------------
    def set_add(self, ns: str, key: str, value: str) -> None:
        members = self._sets[ns].get(key)
        if members is None:
            self._sets[ns][key] = {value}
        else:
            members.add(value)

    def set_members(self, ns: str, key: str) -> frozenset[str] | set[str]:
        return self._sets[ns].get(key) or frozenset()

    # -- timelines ----------------------------------------------------------------------------------
    def timeline_add(self, ns: str, key: str, ts: float, value: str) -> None:
        entries = self._timelines[ns].get(key)
        self._timeline_seq += 1
        entry = (ts, self._timeline_seq, value)
        if not entries:
            self._timelines[ns][key] = [entry]
        elif ts >= entries[-1][0]:
            entries.append(entry)
        else:
            bisect.insort(entries, entry)

    def timeline_range(self, ns: str, key: str, low: float, high: float) -> list[tuple[float, str]]:
        entries = self._timelines[ns].get(key)
        if not entries:
            return []
        start = bisect.bisect_left(entries, (low,))
        end = bisect.bisect_right(entries, (high, float("inf")))
        return [(ts, value) for ts, _, value in entries[start:end]]

    def timeline_window(
        self, ns: str, key: str, low: float, high: float
    ) -> tuple[list[tuple[float, str]], float | None]:
        return self.timeline_range(ns, key, low, high), self.timeline_last(ns, key)

    def timeline_trim(self, ns: str, key: str, before: float) -> None:
        entries = self._timelines[ns].get(key)
        if entries and entries[0][0] < before:
            del entries[: bisect.bisect_left(entries, (before,))]

    def timeline_last(self, ns: str, key: str) -> float | None:
        entries = self._timelines[ns].get(key)
        return entries[-1][0] if entries else None

    # -- idempotency --------------------------------------------------------------------------------
    def seen(self, event_id: str) -> bool:
        return bool(self.seen_ids.contains([event_id])[0])

    def seen_among(self, event_ids: Sequence[str]) -> set[str]:
        found = self.seen_ids.contains(event_ids)
        return {event_ids[int(i)] for i in np.flatnonzero(found)}

    def mark_seen(self, event_id: str, ts: float) -> None:
        self.seen_ids.add([event_id], ts)

    def mark_seen_many(self, event_ids: Sequence[str], ts: float) -> None:
        """:meth:`mark_seen` of every id of a batch, applied at ``ts``."""
        self.seen_ids.add(event_ids, ts)

    def forget_seen_before(self, ts: float) -> None:
        self.seen_ids.forget_before(ts)

    def seen_count(self) -> int:
        return len(self.seen_ids)

    def forget_seen_beyond(self, keep: int) -> None:
        self.seen_ids.forget_beyond(keep)

    # -- whole state ---------------------------------------------------------------------------------
    # -- documents and change logs ---------------------------------------------------------------------
    def doc_put(self, ns: str, key: str, value: bytes | None) -> None:
        if value is None:
            self._docs[ns].pop(key, None)
        else:
            self._docs[ns][key] = value

    def doc_get(self, ns: str, key: str) -> bytes | None:
        return self._docs.get(ns, {}).get(key)

    def docs(self, ns: str) -> dict[str, bytes]:
        return dict(self._docs.get(ns, {}))

    def log_append(self, ns: str, value: bytes) -> None:
        self._logs[ns].append(value)

    def log_tail(self, ns: str) -> str:
        return _log_id(len(self._logs.get(ns, ())))

    def log_read(self, ns: str, after: str, limit: int) -> list[tuple[str, bytes]]:
        entries = self._logs.get(ns, [])
        start = int(after)
        if start > len(entries):
            raise LogGap(f"log {ns!r} has no position {after}")
        return [(_log_id(n + 1), v) for n, v in enumerate(entries[start : start + limit], start)]

    def dump(self) -> bytes:
        parts: dict[str, Any] = {name: _plain(getattr(self, name)) for name in _PARTS}
        parts["timeline_seq"] = self._timeline_seq
        parts["seen_ids"] = self.seen_ids.arrays()
        return pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, blob: bytes) -> None:
        parts = pickle.loads(blob)
        for name in _PARTS:
            if name == "_logs":
                self._logs = defaultdict(list, parts.get(name, {}))
            else:
                setattr(self, name, defaultdict(dict, parts.get(name, {})))
        self._timeline_seq = parts.get("timeline_seq", 0)
        self.seen_ids = SeenIds()
        self.seen_ids.load(parts["seen_ids"])

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self._bounded.get("user_history", {})),
            "remembered_event_ids": len(self.seen_ids),
            "window_keys": sum(len(k) for by in self._window_keys.values() for k in by.values()),
        }


_PARTS = (
    "_counters",
    "_decayed",
    "_windows",
    "_window_keys",
    "_distinct",
    "_rankings",
    "_window_rankings",
    "_bounded",
    "_sets",
    "_timelines",
    "_docs",
    "_logs",
)


def _log_id(position: int) -> str:
    return str(position)


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, defaultdict) else value
