"""Rows addressed by a pair of dense integer ids, held in numpy columns.

A :class:`KeyTable` is the storage of one columnar view: row ``r`` is the key ``(a[r], b[r])`` and one
value in each column. Rows are found through an open-addressing hash index compiled with numba, so a
batch of keys is located (and the missing ones inserted) in one call, with no Python object per row. The
rows of one ``a`` (a user, or an item) are chained, so a reader can list them without a scan.

>>> import numpy as np
>>> table = KeyTable({"score": np.float64})
>>> rows, new = table.upsert(np.array([3, 3, 5]), np.array([7, 7, 1]))
>>> rows.tolist(), new.tolist()
([0, 0, 1], [True, False, True])
>>> table.column("score")[rows] += 1.0
>>> table.group(3).tolist(), table.find(np.array([5, 9]), np.array([1, 1])).tolist()
([0], [1, -1])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]
Column = npt.NDArray[Any]
EMPTY = -1
_MIN_SLOTS = 64


@numba.njit(cache=True, inline="always")
def _hash(a: int, b: int) -> np.uint64:
    # splitmix64 of the pair: neighbouring ids land far apart
    x = np.uint64(a) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(b)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _upsert(
    slots: I32, ka: I64, kb: I64, nxt: I32, head: I32, n: int, a: I64, b: I64, rows: I32, new: Bools
) -> int:
    mask = np.uint64(len(slots) - 1)
    for i in range(len(a)):
        ai, bi = a[i], b[i]
        s = _hash(ai, bi) & mask
        while True:
            r = slots[s]
            if r == EMPTY:
                slots[s] = n
                ka[n] = ai
                kb[n] = bi
                nxt[n] = head[ai]
                head[ai] = n
                rows[i] = n
                new[i] = True
                n += 1
                break
            if ka[r] == ai and kb[r] == bi:
                rows[i] = r
                new[i] = False
                break
            s = (s + np.uint64(1)) & mask
    return n


@numba.njit(cache=True)
def _find(slots: I32, ka: I64, kb: I64, a: I64, b: I64, rows: I32) -> None:
    mask = np.uint64(len(slots) - 1)
    for i in range(len(a)):
        ai, bi = a[i], b[i]
        s = _hash(ai, bi) & mask
        rows[i] = EMPTY
        while True:
            r = slots[s]
            if r == EMPTY:
                break
            if ka[r] == ai and kb[r] == bi:
                rows[i] = r
                break
            s = (s + np.uint64(1)) & mask


@numba.njit(cache=True)
def _reindex(slots: I32, ka: I64, kb: I64, nxt: I32, head: I32, n: int) -> None:
    mask = np.uint64(len(slots) - 1)
    slots[:] = EMPTY
    head[:] = EMPTY
    for r in range(n):
        s = _hash(ka[r], kb[r]) & mask
        while slots[s] != EMPTY:
            s = (s + np.uint64(1)) & mask
        slots[s] = r
        nxt[r] = head[ka[r]]
        head[ka[r]] = r


@numba.njit(cache=True)
def _chain(head: I32, nxt: I32, a: int, out: I32) -> int:
    count = 0
    r = head[a] if a < len(head) else EMPTY
    while r != EMPTY:
        if count == len(out):
            return -1
        out[count] = r
        count += 1
        r = nxt[r]
    return count


def _grown(array: Column, size: int, fill: Any = 0) -> Column:
    out = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


class KeyTable:
    """Rows keyed by ``(a, b)`` with named numpy columns (a column may be 2-D: ``(dtype, width)``)."""

    def __init__(self, columns: Mapping[str, Any], capacity: int = 256) -> None:
        self.n = 0
        self._room = 16  # the out buffer of group(): grown to the longest chain read
        self._spec = dict(columns)
        self._slots = np.full(_MIN_SLOTS, EMPTY, dtype=np.int32)
        self._a = np.zeros(capacity, dtype=np.int64)
        self._b = np.zeros(capacity, dtype=np.int64)
        self._next = np.full(capacity, EMPTY, dtype=np.int32)
        self._head = np.full(64, EMPTY, dtype=np.int32)
        self._columns: dict[str, Column] = {}
        for name, spec in self._spec.items():
            dtype, width = spec if isinstance(spec, tuple) else (spec, None)
            shape = (capacity,) if width is None else (capacity, width)
            self._columns[name] = np.zeros(shape, dtype=dtype)
        self._reserve(0, 0)

    # -- capacity -----------------------------------------------------------------------------------
    def _reserve(self, extra: int, max_a: int) -> None:
        need = self.n + extra
        if need > len(self._a):
            size = max(need, 2 * len(self._a))
            self._a = _grown(self._a, size)
            self._b = _grown(self._b, size)
            self._next = _grown(self._next, size, EMPTY)
            self._columns = {k: _grown(v, size) for k, v in self._columns.items()}
        if max_a >= len(self._head):
            self._head = _grown(self._head, max(max_a + 1, 2 * len(self._head)), EMPTY)
        slots = len(self._slots)
        if 2 * need > slots:  # load factor at most 1/2
            while 2 * need > slots:
                slots *= 2
            self._slots = np.empty(slots, dtype=np.int32)
            _reindex(self._slots, self._a, self._b, self._next, self._head, self.n)

    # -- rows ---------------------------------------------------------------------------------------
    def upsert(self, a: I64, b: I64) -> tuple[I32, Bools]:
        """The row of each key (inserted, with zero values, when missing) and whether it was inserted."""
        a = np.ascontiguousarray(a, dtype=np.int64)
        b = np.ascontiguousarray(b, dtype=np.int64)
        rows = np.empty(len(a), dtype=np.int32)
        new = np.empty(len(a), dtype=np.bool_)
        if len(a):
            self._reserve(len(a), int(a.max()))
            self.n = _upsert(self._slots, self._a, self._b, self._next, self._head, self.n, a, b, rows, new)
        return rows, new

    def find(self, a: I64, b: I64) -> I32:
        """The row of each key, or -1."""
        a = np.ascontiguousarray(a, dtype=np.int64)
        b = np.ascontiguousarray(b, dtype=np.int64)
        rows = np.empty(len(a), dtype=np.int32)
        if len(a):
            _find(self._slots, self._a, self._b, a, b, rows)
        return rows

    def find_one(self, a: int, b: int) -> int:
        return int(self.find(np.array([a]), np.array([b]))[0])

    def group(self, a: int) -> I32:
        """Rows whose first id is ``a`` (newest first)."""
        # sized by the longest chain read so far: a long chain is walked once, not once per doubling
        out = np.empty(self._room, dtype=np.int32)
        while True:
            count = _chain(self._head, self._next, a, out)
            if count >= 0:
                return out[:count].copy() if count * 4 < len(out) else out[:count]
            self._room *= 2
            out = np.empty(self._room, dtype=np.int32)

    def column(self, name: str) -> Column:
        """The whole column (its capacity may exceed :attr:`n`; rows past ``n`` are zero)."""
        return self._columns[name]

    @property
    def ka(self) -> I64:
        """The first id of every row (valid up to :attr:`n`)."""
        return self._a

    @property
    def kb(self) -> I64:
        """The second id of every row (valid up to :attr:`n`)."""
        return self._b

    def chains(self) -> tuple[I32, I32]:
        """``(head, next)``: the newest row of each first id, and each row's older row of the same id."""
        return self._head, self._next

    def keys(self) -> tuple[I64, I64]:
        return self._a[: self.n], self._b[: self.n]

    def firsts(self) -> I64:
        """The distinct first ids that have rows."""
        return np.unique(self._a[: self.n])

    def keep(self, mask: Bools) -> None:
        """Drop every row where ``mask`` (over the first :attr:`n` rows) is False."""
        index = np.flatnonzero(mask)
        if len(index) == self.n:
            return
        self._a[: len(index)] = self._a[index]
        self._b[: len(index)] = self._b[index]
        for column in self._columns.values():
            column[: len(index)] = column[index]
            column[len(index) : self.n] = 0
        self.n = len(index)
        _reindex(self._slots, self._a, self._b, self._next, self._head, self.n)

    def drop(self, first: Bools | None = None, second: Bools | None = None) -> int:
        """Drop every row whose first id is True in ``first`` or whose second id is True in ``second``
        (boolean arrays indexed by id; ids past their end are kept); returns how many rows went.

        The rows left keep their order and move down, so the rows freed are reused by the next inserts:
        a table under churn stays at its peak size.
        """
        gone = np.zeros(self.n, dtype=np.bool_)
        for dead, ids in ((first, self._a), (second, self._b)):
            if dead is None or not len(dead) or not self.n:
                continue
            keys = ids[: self.n]
            inside = keys < len(dead)
            gone[inside] |= dead[keys[inside]]
        dropped = int(np.count_nonzero(gone))
        if dropped:
            self.keep(~gone)
        return dropped

    def used_bytes(self) -> int:
        """Bytes of the rows held (keys, chain, columns and two index slots per row), not of the capacity."""
        row = 8 + 8 + 4 + 2 * 4 + sum(c.itemsize * int(np.prod(c.shape[1:])) for c in self._columns.values())
        return self.n * row

    # -- snapshots ----------------------------------------------------------------------------------
    def arrays(self) -> dict[str, Column]:
        """The rows as plain arrays (the index is rebuilt on load)."""
        out = {"a": self._a[: self.n], "b": self._b[: self.n]}
        out.update({f"col.{k}": v[: self.n] for k, v in self._columns.items()})
        return out

    def load(self, arrays: Mapping[str, Column]) -> None:
        n = len(arrays["a"])
        self.n = 0
        self._reserve(n, int(arrays["a"].max()) if n else 0)
        self._a[:n] = arrays["a"]
        self._b[:n] = arrays["b"]
        for name, column in self._columns.items():
            column[:n] = arrays[f"col.{name}"]
        self.n = n
        _reindex(self._slots, self._a, self._b, self._next, self._head, self.n)

    def nbytes(self) -> int:
        parts: list[Column] = [self._slots, self._a, self._b, self._next, self._head]
        return sum(p.nbytes for p in [*parts, *self._columns.values()])
