"""What every vector index offers, and the input checks they share.

Similarity is cosine: every stored vector and every query is L2-normalised on the way in (a no-op, up to
rounding, for the unit-length sentence embeddings items carry; it makes a user centroid — a mean of unit
vectors — score as a cosine too). Results are ``(id, similarity)`` pairs, similarity descending, ties by id
ascending.

Indexes are not thread-safe: one writer at a time, and no search while a write runs.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

FloatMatrix = NDArray[np.float32]
FloatVector = NDArray[np.float32]

MAGIC = b"FRVX"
SNAPSHOT_VERSION = 1
_HEADER = struct.Struct("<4sHB")  # magic, version, kind


class VectorIndex(Protocol):
    """An id → vector index answering top-k cosine similarity queries."""

    @property
    def dim(self) -> int:
        """Dimension of every vector in this index."""
        ...

    def __len__(self) -> int:
        """Number of ids in the index."""
        ...

    def upsert(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        """Add ``ids`` with their rows of ``vectors`` (shape ``(len(ids), dim)``), replacing existing ids.

        A repeated id within one call keeps its last row. All-or-nothing: a bad row stores nothing.
        """
        ...

    def remove(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; unknown ids are ignored."""
        ...

    def search(self, vector: FloatVector, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` ids most similar to ``vector`` (fewer if there are fewer), never one of ``exclude``."""
        ...

    def vector(self, id: str) -> FloatVector | None:
        """A copy of the stored (normalised) vector of ``id``, or ``None``."""
        ...

    def dump(self) -> bytes:
        """A snapshot of the whole index."""
        ...

    def load(self, blob: bytes) -> None:
        """Replace the contents with a snapshot made by :meth:`dump` of an index of the same kind and dim."""
        ...


def normalized_rows(ids: Sequence[str], vectors: FloatMatrix, dim: int) -> FloatMatrix:
    """Check ids and vectors match and are usable; return the rows L2-normalised as a new float32 matrix."""
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of strings, not one string")
    matrix = np.asarray(vectors)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {matrix.shape}")
    if matrix.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but {matrix.shape[0]} vectors")
    for item_id in ids:
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"ids must be non-empty strings, got {item_id!r}")
    rows = np.array(matrix, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(rows).all():
        raise ValueError("vectors must be finite")
    norms = np.linalg.norm(rows, axis=1)
    if rows.shape[0] and not (norms > 0).all():
        bad = ids[int(np.flatnonzero(~(norms > 0))[0])]
        raise ValueError(f"the vector of {bad!r} has zero length")
    rows /= norms[:, None].astype(np.float32)
    return rows


def normalized_query(vector: FloatVector, dim: int) -> FloatVector:
    """Check a query vector; return it L2-normalised as a new float32 vector."""
    query = np.array(vector, dtype=np.float32, copy=True).reshape(-1)
    if query.shape != (dim,):
        raise ValueError(f"query must have {dim} components, got shape {np.shape(vector)}")
    if not np.isfinite(query).all():
        raise ValueError("query must be finite")
    norm = np.float32(np.linalg.norm(query))
    if not norm > 0:
        raise ValueError("query has zero length")
    query /= norm
    return query


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")


def last_wins(ids: Sequence[str], rows: FloatMatrix) -> tuple[list[str], FloatMatrix]:
    """Drop earlier occurrences of an id repeated within one upsert."""
    position = {item_id: i for i, item_id in enumerate(ids)}
    if len(position) == len(ids):
        return list(ids), rows
    keep = sorted(position.values())
    return [ids[i] for i in keep], rows[keep]


def ranked(pairs: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    """Similarity descending, ties by id ascending, at most ``k``."""
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return pairs[:k]


def pack_header(kind: int) -> bytes:
    return _HEADER.pack(MAGIC, SNAPSHOT_VERSION, kind)


def unpack_header(blob: bytes) -> tuple[int, memoryview]:
    """The kind byte of a snapshot and the rest of it."""
    view = memoryview(blob)
    if len(view) < _HEADER.size:
        raise ValueError("not a vector index snapshot: too short")
    magic, version, kind = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise ValueError("not a vector index snapshot: bad magic")
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"unsupported vector index snapshot version {version}")
    return int(kind), view[_HEADER.size :]
