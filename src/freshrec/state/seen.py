"""The event ids applied recently, for idempotency: 128-bit hashes in numpy arrays, not a dict of strings.

An id is remembered as two 64-bit hashes of its UTF-8 bytes (FNV-1a with two offset bases, each finished
by splitmix64) and the time it was marked. 32 bytes per id (the two hashes, the time, and a slot of the
open-addressing index at load ≤ ½) instead of ~110 for a ``dict[str, float]`` entry. Two different ids are
taken for one only if both hashes collide: for a billion remembered ids the chance of any such pair is
below 10⁻¹⁹ (birthday bound on 128 bits) for ids that are not crafted against the hash.

>>> ids = SeenIds()
>>> ids.add(["e1", "e2"], 10.0)
>>> ids.contains(["e2", "e3"]).tolist(), len(ids)
([True, False], 2)
>>> ids.forget_before(11.0); len(ids)
0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
_EMPTY = -1
_MIN_SLOTS = 1024


def _encode(ids: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The ids' UTF-8 bytes back to back, and where each ends."""
    encoded = [i.encode() for i in ids]
    ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


@numba.njit(cache=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _hashes(data: Any, ends: Any, h1: Any, h2: Any) -> None:
    prime = np.uint64(0x100000001B3)
    start = 0
    for i in range(len(ends)):
        a = np.uint64(0xCBF29CE484222325)
        b = np.uint64(0x84222325CBF29CE4)
        for j in range(start, ends[i]):
            c = np.uint64(data[j])
            a = (a ^ c) * prime
            b = (b ^ c) * np.uint64(0x9E3779B97F4A7C15)
        length = np.uint64(ends[i] - start)
        h1[i] = _mix(a ^ length)
        h2[i] = _mix(b + length)
        start = ends[i]


@numba.njit(cache=True)
def _find(slots: Any, k1: Any, k2: Any, h1: Any, h2: Any, out: Any) -> None:
    mask = np.uint64(len(slots) - 1)
    for i in range(len(h1)):
        s = h1[i] & mask
        out[i] = _EMPTY
        while True:
            r = slots[s]
            if r == _EMPTY:
                break
            if k1[r] == h1[i] and k2[r] == h2[i]:
                out[i] = r
                break
            s = (s + np.uint64(1)) & mask


@numba.njit(cache=True)
def _insert(slots: Any, k1: Any, k2: Any, ts: Any, n: int, h1: Any, h2: Any, at: float) -> int:
    """Add (or re-mark) each hash pair; returns the new row count."""
    mask = np.uint64(len(slots) - 1)
    for i in range(len(h1)):
        s = h1[i] & mask
        while True:
            r = slots[s]
            if r == _EMPTY:
                slots[s] = n
                k1[n] = h1[i]
                k2[n] = h2[i]
                ts[n] = at
                n += 1
                break
            if k1[r] == h1[i] and k2[r] == h2[i]:
                ts[r] = at
                break
            s = (s + np.uint64(1)) & mask
    return n


@numba.njit(cache=True)
def _reindex(slots: Any, k1: Any, n: int) -> None:
    slots[:] = _EMPTY
    mask = np.uint64(len(slots) - 1)
    for r in range(n):
        s = k1[r] & mask
        while slots[s] != _EMPTY:
            s = (s + np.uint64(1)) & mask
        slots[s] = r


class SeenIds:
    """A set of ids, each with the time it was last marked; forgotten by time or beyond a count."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self._k1: U64 = np.zeros(_MIN_SLOTS // 2, dtype=np.uint64)
        self._k2: U64 = np.zeros(_MIN_SLOTS // 2, dtype=np.uint64)
        self._ts: F64 = np.zeros(_MIN_SLOTS // 2, dtype=np.float64)
        self._slots = np.full(_MIN_SLOTS, _EMPTY, dtype=np.int32)

    def __len__(self) -> int:
        return self.n

    def contains(self, ids: Sequence[str]) -> npt.NDArray[np.bool_]:
        h1, h2 = _hash_ids(ids)
        rows = np.empty(len(ids), dtype=np.int64)
        _find(self._slots, self._k1, self._k2, h1, h2, rows)
        found: npt.NDArray[np.bool_] = rows >= 0
        return found

    def add(self, ids: Sequence[str], at: float) -> None:
        h1, h2 = _hash_ids(ids)
        self._reserve(self.n + len(ids))
        self.n = _insert(self._slots, self._k1, self._k2, self._ts, self.n, h1, h2, float(at))

    def forget_before(self, at: float) -> None:
        self._keep(self._ts[: self.n] >= at)

    def forget_beyond(self, keep: int) -> None:
        """Keep the ``keep`` ids marked latest."""
        if self.n <= keep:
            return
        if keep <= 0:
            self._reset()
            return
        cut = np.partition(self._ts[: self.n], self.n - keep)[self.n - keep]
        newest = self._ts[: self.n] > cut
        ties = np.flatnonzero(self._ts[: self.n] == cut)[: keep - int(newest.sum())]
        newest[ties] = True
        self._keep(newest)

    def nbytes(self) -> int:
        return int(self._k1.nbytes + self._k2.nbytes + self._ts.nbytes + self._slots.nbytes)

    # -- snapshots ----------------------------------------------------------------------------------
    def arrays(self) -> dict[str, Any]:
        return {"h1": self._k1[: self.n], "h2": self._k2[: self.n], "ts": self._ts[: self.n]}

    def load(self, arrays: dict[str, Any]) -> None:
        n = len(arrays["h1"])
        self.n = 0
        self._reserve(n)
        self._k1[:n], self._k2[:n], self._ts[:n] = arrays["h1"], arrays["h2"], arrays["ts"]
        self.n = n
        _reindex(self._slots, self._k1, n)

    # -- internals ----------------------------------------------------------------------------------
    def _keep(self, mask: npt.NDArray[np.bool_]) -> None:
        kept = {k: v[mask] for k, v in self.arrays().items()}
        self._reset()
        self.load(kept)

    def _reserve(self, rows: int) -> None:
        if rows > len(self._k1):
            size = max(rows, 2 * len(self._k1))
            for name in ("_k1", "_k2", "_ts"):
                old = getattr(self, name)
                grown = np.zeros(size, dtype=old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, name, grown)
        if 2 * rows > len(self._slots):
            slots = len(self._slots)
            while 2 * rows > slots:
                slots *= 2
            self._slots = np.full(slots, _EMPTY, dtype=np.int32)
            _reindex(self._slots, self._k1, self.n)


def _hash_ids(ids: Sequence[str]) -> tuple[U64, U64]:
    data, ends = _encode(ids)
    h1 = np.empty(len(ids), dtype=np.uint64)
    h2 = np.empty(len(ids), dtype=np.uint64)
    _hashes(data, ends, h1, h2)
    return h1, h2
