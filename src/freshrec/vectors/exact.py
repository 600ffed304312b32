"""Exact (brute force) cosine search with NumPy: the reference every other index is checked against.

Vectors live in one contiguous float32 matrix, rows ``0..n-1`` all live: a removal moves the last row into
the hole (swap-remove), so a query is one pass over ``matrix[:n]``. Capacity doubles when full and halves
when a quarter full.

The pass is ``np.vecdot`` (a dot product per row, on the calling thread), not ``matrix @ query``: that is a
BLAS gemv, which OpenBLAS splits over every core, and on a 2-core machine with anything else running it
waits for a descheduled thread — ``bench/ann.py`` measured 8–12 ms instead of 0.7 ms at 20k rows. Single
threaded it is ~1.2 ms p50 / 1.4 ms p99 at 20k × 384, and degrades gracefully under load.

Order is exact, ties included: the float32 product only picks candidates — every row within the float32
rounding bound of the k-th best score — and those are rescored in float64 (an elementwise product summed
per row, the same operations for every row, so equal vectors score equal) before sorting by similarity
descending, then id ascending.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence

import numpy as np
import orjson

from freshrec.vectors.base import (
    FloatMatrix,
    FloatVector,
    check_k,
    last_wins,
    normalized_query,
    normalized_rows,
    pack_header,
    ranked,
    unpack_header,
)

KIND_EXACT = 1
_MIN_CAPACITY = 64
_SIZES = struct.Struct("<IIQ")  # dim, n, length of the ids JSON


def rescore(rows: FloatMatrix, query: FloatVector) -> list[float]:
    """Cosine of each row with ``query`` in float64, computed identically for every row."""
    products = rows.astype(np.float64) * query.astype(np.float64)
    # float32 unit vectors are unit only to ~1e-7: a cosine may come out a hair above 1
    return [float(s) for s in np.clip(products.sum(axis=1), -1.0, 1.0)]


class ExactIndex:
    """Brute-force :class:`~freshrec.vectors.base.VectorIndex`."""

    def __init__(self, dim: int, capacity: int = _MIN_CAPACITY) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = dim
        self._matrix: FloatMatrix = np.empty((max(capacity, _MIN_CAPACITY), dim), dtype=np.float32)
        self._ids: list[str] = []  # row -> id
        self._rows: dict[str, int] = {}  # id -> row
        # float32 dot products of unit vectors are off by at most dim * 2**-24 each; two of them compared
        self._slack = dim * 2.0**-22

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def ids(self) -> list[str]:
        """Every id, in row order."""
        return list(self._ids)

    def matrix(self) -> FloatMatrix:
        """A read-only view of the live rows, in the order of :meth:`ids`."""
        view = self._matrix[: len(self._ids)]
        view.flags.writeable = False
        return view

    def rows(self, ids: Sequence[str]) -> FloatMatrix:
        """A copy of the stored vectors of ``ids`` (all present), one row each."""
        return self._matrix[[self._rows[item_id] for item_id in ids]]

    def upsert(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        rows = normalized_rows(ids, vectors, self._dim)
        unique_ids, rows = last_wins(ids, rows)
        existing = [(i, self._rows[item_id]) for i, item_id in enumerate(unique_ids) if item_id in self._rows]
        if existing:
            positions, targets = zip(*existing, strict=True)
            self._matrix[list(targets)] = rows[list(positions)]
        fresh = [i for i, item_id in enumerate(unique_ids) if item_id not in self._rows]
        if fresh:
            start = len(self._ids)
            self._reserve(start + len(fresh))
            self._matrix[start : start + len(fresh)] = rows[fresh]
            for offset, i in enumerate(fresh):
                self._rows[unique_ids[i]] = start + offset
                self._ids.append(unique_ids[i])

    def remove(self, ids: Sequence[str]) -> None:
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of strings, not one string")
        for item_id in ids:
            row = self._rows.pop(item_id, None)
            if row is None:
                continue
            last = len(self._ids) - 1
            if row != last:
                moved = self._ids[last]
                self._matrix[row] = self._matrix[last]
                self._ids[row] = moved
                self._rows[moved] = row
            self._ids.pop()
        if len(self._ids) * 4 < self._matrix.shape[0] and self._matrix.shape[0] > _MIN_CAPACITY:
            self._resize(max(_MIN_CAPACITY, len(self._ids) * 2))

    def search(self, vector: FloatVector, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        check_k(k)
        query = normalized_query(vector, self._dim)
        n = len(self._ids)
        excluded = [self._rows[item_id] for item_id in set(exclude) if item_id in self._rows]
        wanted = min(k, n - len(excluded))
        if wanted <= 0:
            return []
        scores = np.vecdot(self._matrix[:n], query)
        if excluded:
            scores[excluded] = -np.inf
        kth = n - wanted
        threshold = float(np.partition(scores, kth)[kth]) - self._slack
        candidates = np.flatnonzero(scores >= threshold)
        exact = rescore(self._matrix[candidates], query)
        return ranked(
            [(self._ids[row], s) for row, s in zip(candidates.tolist(), exact, strict=True)], wanted
        )

    def vector(self, id: str) -> FloatVector | None:
        row = self._rows.get(id)
        return None if row is None else self._matrix[row].copy()

    def dump(self) -> bytes:
        ids_json = orjson.dumps(self._ids)
        n = len(self._ids)
        return b"".join(
            (
                pack_header(KIND_EXACT),
                _SIZES.pack(self._dim, n, len(ids_json)),
                ids_json,
                self._matrix[:n].astype("<f4", copy=False).tobytes(),
            )
        )

    def load(self, blob: bytes) -> None:
        kind, body = unpack_header(blob)
        if kind != KIND_EXACT:
            raise ValueError(f"not an exact index snapshot (kind {kind})")
        ids, matrix = decode_exact(body, self._dim)
        self._matrix = np.empty((max(_MIN_CAPACITY, len(ids)), self._dim), dtype=np.float32)
        self._matrix[: len(ids)] = matrix
        self._ids = ids
        self._rows = {item_id: row for row, item_id in enumerate(ids)}

    def _reserve(self, size: int) -> None:
        if size > self._matrix.shape[0]:
            self._resize(max(size, self._matrix.shape[0] * 2))

    def _resize(self, capacity: int) -> None:
        grown = np.empty((capacity, self._dim), dtype=np.float32)
        n = len(self._ids)
        grown[:n] = self._matrix[:n]
        self._matrix = grown


def decode_exact(body: memoryview, dim: int) -> tuple[list[str], FloatMatrix]:
    """The ids and rows of an exact snapshot's body (after the header)."""
    if len(body) < _SIZES.size:
        raise ValueError("truncated exact index snapshot")
    snap_dim, n, ids_len = _SIZES.unpack_from(body)
    if snap_dim != dim:
        raise ValueError(f"snapshot has dim {snap_dim}, index has dim {dim}")
    start = _SIZES.size
    if len(body) != start + ids_len + n * dim * 4:
        raise ValueError("truncated or oversized exact index snapshot")
    ids = orjson.loads(body[start : start + ids_len])
    if not isinstance(ids, list) or len(ids) != n or not all(isinstance(i, str) for i in ids):
        raise ValueError("corrupt exact index snapshot: bad ids")
    if len(set(ids)) != n:
        raise ValueError("corrupt exact index snapshot: repeated ids")
    matrix = np.frombuffer(body, dtype="<f4", count=n * dim, offset=start + ids_len).reshape(n, dim)
    return ids, matrix.astype(np.float32)
