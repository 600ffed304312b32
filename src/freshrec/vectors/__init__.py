"""Vector indexes for item → similar items and user centroid → items (cosine similarity).

:func:`open_index` gives an :class:`AutoIndex`: exact NumPy search while the catalog is small, an HNSW graph
(usearch) once it grows past ``exact_threshold`` items. The switch is transparent and never blocks on a
full build: once past the threshold every write also copies ``migrate_batch`` not-yet-copied items into the
graph (or as many as the write itself holds, if more, so that a bulk import in chunks finishes the graph as
it goes), searches stay exact (and complete) until the graph holds everything, then the exact index is
dropped. Loading a snapshot finishes the graph at once. It does not switch back.

>>> import numpy as np
>>> index = open_index(dim=3)
>>> index.upsert(["a", "b", "c"], np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1]], dtype=np.float32))
>>> [(item, round(score, 2)) for item, score in index.search(np.array([1, 0, 0], dtype=np.float32), 2)]
[('a', 1.0), ('b', 0.8)]
>>> index.search(np.array([1, 0, 0], dtype=np.float32), 2, exclude={"a"})[0][0]
'b'
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from freshrec.vectors import _load_order  # noqa: F401  (before usearch: see that module)
from freshrec.vectors.ann import EXPANSION_SEARCH, KIND_ANN, AnnIndex, Storage
from freshrec.vectors.base import FloatMatrix, FloatVector, VectorIndex, unpack_header
from freshrec.vectors.exact import KIND_EXACT, ExactIndex

__all__ = [
    "DEFAULT_EXACT_THRESHOLD",
    "AnnIndex",
    "AutoIndex",
    "ExactIndex",
    "VectorIndex",
    "open_index",
]

# Exact search of 384-d vectors, one thread, k=10: p99 ≈ 1.4–1.7 ms at 20k items on the 2-core reference
# machine, ≈ 2 ms at 30k, 4.3 ms at 50k (bench/ann.py); the graph answers in ≈ 0.3 ms there and ≈ 0.6 ms at
# 100k, with recall@10 ≥ 0.999.
DEFAULT_EXACT_THRESHOLD = 20_000
# One graph insert costs ≈ 1 ms (384-d, one thread): past the threshold each write carries ≈ 0.5 s of copying
# until the 20k items are in, instead of one write blocking for ≈ 20 s.
DEFAULT_MIGRATE_BATCH = 500


class AutoIndex:
    """A :class:`~freshrec.vectors.base.VectorIndex`: exact up to ``exact_threshold`` items, ANN above.

    ``migrate_batch``: items copied into the graph per write while switching (:meth:`finish_migration` copies
    the rest at once). ``ef``, ``threads``, ``ann_dtype``: the graph's ef_search, add threads and storage
    (see :class:`~freshrec.vectors.ann.AnnIndex`).
    """

    def __init__(
        self,
        dim: int,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        *,
        migrate_batch: int = DEFAULT_MIGRATE_BATCH,
        ef: int = EXPANSION_SEARCH,
        threads: int = 1,
        ann_dtype: Storage = "f32",
    ) -> None:
        if exact_threshold < 0 or migrate_batch <= 0:
            raise ValueError("exact_threshold must be ≥ 0 and migrate_batch > 0")
        self._dim = dim
        self.exact_threshold = exact_threshold
        self.migrate_batch = migrate_batch
        self._ef = ef
        self._threads = threads
        self._ann_dtype: Storage = ann_dtype
        self._exact: ExactIndex | None = ExactIndex(dim)
        self._ann: AnnIndex | None = None
        self._pending: dict[str, None] = {}  # ids in the exact index not yet copied into the graph

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def mode(self) -> Literal["exact", "migrating", "ann"]:
        """``exact``; ``migrating`` (graph being filled, searches still exact); ``ann``."""
        if self._ann is None:
            return "exact"
        return "ann" if self._exact is None else "migrating"

    def set_ef(self, ef: int) -> None:
        """ef_search of the graph (now or once there is one)."""
        if ef <= 0:
            raise ValueError(f"ef must be positive, got {ef}")
        self._ef = ef
        if self._ann is not None:
            self._ann.set_ef(ef)

    def __len__(self) -> int:
        return len(self._exact) if self._exact is not None else len(self._backend())

    def upsert(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        # the first index validates everything before either changes
        if self._exact is not None:
            self._exact.upsert(ids, vectors)
        if self._ann is not None:
            self._ann.upsert(ids, vectors)
            for item_id in ids:
                self._pending.pop(item_id, None)
        self._step(at_least=len(ids))

    def remove(self, ids: Sequence[str]) -> None:
        if self._exact is not None:
            self._exact.remove(ids)
        if self._ann is not None:
            self._ann.remove(ids)
            for item_id in ids:
                self._pending.pop(item_id, None)
        self._step()

    def search(self, vector: FloatVector, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        return self._reader().search(vector, k, exclude)

    def vector(self, id: str) -> FloatVector | None:
        return self._reader().vector(id)

    def finish_migration(self) -> None:
        """Copy every remaining item into the graph now (after which searches use it)."""
        while self._exact is not None and self._ann is not None:
            self._step(everything=True)

    def dump(self) -> bytes:
        return self._reader().dump()

    def load(self, blob: bytes) -> None:
        kind, _ = unpack_header(blob)
        if kind == KIND_EXACT:
            exact = ExactIndex(self._dim)
            exact.load(blob)
            self._exact, self._ann, self._pending = exact, None, {}
        elif kind == KIND_ANN:
            ann = AnnIndex(self._dim, threads=self._threads)
            ann.load(blob)
            ann.set_ef(self._ef)
            self._exact, self._ann, self._pending = None, ann, {}
        else:
            raise ValueError(f"unknown vector index snapshot kind {kind}")
        self._step(everything=True)  # a restart must not leave search exact until enough writes come

    def _reader(self) -> ExactIndex | AnnIndex:
        return self._exact if self._exact is not None else self._backend()

    def _backend(self) -> AnnIndex:
        assert self._ann is not None
        return self._ann

    def _step(self, *, everything: bool = False, at_least: int = 0) -> None:
        exact = self._exact
        if exact is None:
            return
        if self._ann is None:
            if len(exact) <= self.exact_threshold:
                return
            self._ann = AnnIndex(
                self._dim, expansion_search=self._ef, threads=self._threads, dtype=self._ann_dtype
            )
            self._pending = dict.fromkeys(exact.ids())
        wanted = max(self.migrate_batch, at_least)
        batch = len(self._pending) if everything else min(wanted, len(self._pending))
        if batch:
            ids = [self._pending.popitem()[0] for _ in range(batch)]
            rows = exact.rows(ids)
            self._ann.upsert(ids, rows)
        if not self._pending:
            self._exact = None


def open_index(dim: int, exact_threshold: int = DEFAULT_EXACT_THRESHOLD) -> AutoIndex:
    """A new, empty index for ``dim``-dimensional vectors (exact below ``exact_threshold`` items)."""
    return AutoIndex(dim, exact_threshold)
