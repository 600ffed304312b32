"""Approximate cosine search: an HNSW graph from usearch (chosen by ``bench/ann.py``), with string ids.

usearch keys are integers: each upsert gives the id a fresh label (a counter) and drops the old one, so a
replaced or removed vector can never come back under the id, whatever the graph still holds; results whose
label is no longer live are skipped. Capacity grows inside usearch; a removed slot is reused by later adds.

Vectors are stored as float32 by default; ``dtype="f16"`` halves their memory and, measured at 100k × 384
(bench/ann.py), roughly doubles add and search speed, at recall@10 0.9987–0.9989 instead of 0.9993 (ef 64)
and with stored vectors — and so scores — rounded to float16 (scores within ~1e-4).

Excluded ids are filtered after the search: the graph is asked for ``k`` plus the number of excluded ids it
holds, and again with twice as many, up to an exhaustive (exact) search, while filtering leaves fewer than
``k``. A request for at least as many results as the index holds is answered exhaustively.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from typing import Literal

import numpy as np
import orjson
from usearch.compiled import MetricKind, ScalarKind
from usearch.index import Index, Matches

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

KIND_ANN = 2
CONNECTIVITY = 16  # HNSW M
EXPANSION_ADD = 200  # ef_construction
EXPANSION_SEARCH = 64  # ef_search: recall@10 ≥ 0.99 at 100k clustered items (bench/ann.py)
_SIZES = struct.Struct("<IIIIQQQ")  # dim, M, ef_add, ef_search, next label, ids JSON length, usearch length

Storage = Literal["f32", "f16"]
_STORAGE: dict[ScalarKind, Storage] = {ScalarKind.F32: "f32", ScalarKind.F16: "f16"}


class AnnIndex:
    """HNSW :class:`~freshrec.vectors.base.VectorIndex` (usearch, inner product on normalised vectors).

    ``threads`` is used by adds (0: every core); a search always runs on the calling thread. The default, 1,
    keeps the graph deterministic and whole: vectors of one batch added in parallel may miss linking to each
    other, and a batch of new, mutually close vectors (a new cluster) then leaves some unreachable — measured
    as ~0.1% of them not found by their own vector with 2 threads, none with 1.
    """

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = CONNECTIVITY,
        expansion_add: int = EXPANSION_ADD,
        expansion_search: int = EXPANSION_SEARCH,
        threads: int = 1,
        dtype: Storage = "f32",
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if dtype not in ("f32", "f16"):
            raise ValueError(f"dtype must be f32 or f16, got {dtype!r}")
        self._dim = dim
        self._dtype = dtype
        self._connectivity = connectivity
        self._expansion_add = expansion_add
        self._expansion_search = expansion_search
        self.threads = threads
        self._index = self._new_graph()
        self._label_of: dict[str, int] = {}
        self._id_of: dict[int, str] = {}
        self._next_label = 0

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ef(self) -> int:
        """ef_search: candidates kept while searching (at least the number of results asked for)."""
        return self._expansion_search

    def set_ef(self, ef: int) -> None:
        if ef <= 0:
            raise ValueError(f"ef must be positive, got {ef}")
        self._expansion_search = ef
        _set_expansion_search(self._index, ef)

    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._label_of

    def upsert(self, ids: Sequence[str], vectors: FloatMatrix) -> None:
        rows = normalized_rows(ids, vectors, self._dim)
        unique_ids, rows = last_wins(ids, rows)
        if not unique_ids:
            return
        labels = np.arange(self._next_label, self._next_label + len(unique_ids), dtype=np.uint64)
        self._index.add(labels, rows, threads=self.threads)
        self._next_label += len(unique_ids)
        stale = [self._label_of[item_id] for item_id in unique_ids if item_id in self._label_of]
        for item_id, label in zip(unique_ids, labels.tolist(), strict=True):
            self._label_of[item_id] = label
            self._id_of[label] = item_id
        self._drop(stale)

    def remove(self, ids: Sequence[str]) -> None:
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of strings, not one string")
        self._drop([label for item_id in ids if (label := self._label_of.pop(item_id, None)) is not None])

    def search(self, vector: FloatVector, k: int, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        check_k(k)
        query = normalized_query(vector, self._dim)
        n = len(self._label_of)
        excluded = {item_id for item_id in exclude if item_id in self._label_of}
        wanted = min(k, n - len(excluded))
        if wanted <= 0:
            return []
        count = wanted + len(excluded)
        while True:
            exhaustive = count >= n
            matches = self._index.search(query, n if exhaustive else count, threads=1, exact=exhaustive)
            assert isinstance(matches, Matches)
            found: list[tuple[str, float]] = []
            for label, distance in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True):
                item_id = self._id_of.get(label)
                if item_id is not None and item_id not in excluded:
                    found.append((item_id, min(1.0, max(-1.0, 1.0 - distance))))
            if len(found) >= wanted or exhaustive:
                return ranked(found, wanted)
            count *= 2

    def vector(self, id: str) -> FloatVector | None:
        label = self._label_of.get(id)
        if label is None:
            return None
        got = self._index.get(label)
        assert isinstance(got, np.ndarray)
        return got.astype(np.float32, copy=True)

    def dump(self) -> bytes:
        ids = list(self._label_of)
        ids_json = orjson.dumps([[item_id, self._label_of[item_id]] for item_id in ids])
        graph = self._index.save()
        assert graph is not None
        sizes = _SIZES.pack(
            self._dim,
            self._connectivity,
            self._expansion_add,
            self._expansion_search,
            self._next_label,
            len(ids_json),
            len(graph),
        )
        return b"".join((pack_header(KIND_ANN), sizes, ids_json, graph))

    def load(self, blob: bytes) -> None:
        kind, body = unpack_header(blob)
        if kind != KIND_ANN:
            raise ValueError(f"not an ANN index snapshot (kind {kind})")
        if len(body) < _SIZES.size:
            raise ValueError("truncated ANN index snapshot")
        dim, connectivity, ef_add, ef_search, next_label, ids_len, graph_len = _SIZES.unpack_from(body)
        if dim != self._dim:
            raise ValueError(f"snapshot has dim {dim}, index has dim {self._dim}")
        start = _SIZES.size
        if len(body) != start + ids_len + graph_len:
            raise ValueError("truncated or oversized ANN index snapshot")
        pairs = orjson.loads(body[start : start + ids_len])
        label_of = _decode_labels(pairs, next_label)
        try:
            graph = Index.restore(
                bytes(body[start + ids_len :]),
                connectivity=connectivity,
                expansion_add=ef_add,
                expansion_search=ef_search,
            )
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ValueError(f"corrupt ANN index snapshot: {exc}") from exc
        if graph is None or graph.ndim != dim or len(graph) != len(label_of):
            raise ValueError("corrupt ANN index snapshot: graph does not match its ids")
        dtype = _STORAGE.get(graph.dtype)
        if dtype is None or graph.metric_kind != MetricKind.IP:
            raise ValueError(f"unsupported ANN index snapshot: {graph.dtype}, {graph.metric_kind}")
        if label_of and not np.all(graph.contains(np.fromiter(label_of.values(), dtype=np.uint64))):
            raise ValueError("corrupt ANN index snapshot: labels missing from the graph")
        self._connectivity, self._expansion_add, self._expansion_search = connectivity, ef_add, ef_search
        self._dtype = dtype
        self._index = graph
        self._label_of = label_of
        self._id_of = {label: item_id for item_id, label in label_of.items()}
        self._next_label = next_label

    def _new_graph(self) -> Index:
        return Index(
            ndim=self._dim,
            metric="ip",
            dtype=self._dtype,
            connectivity=self._connectivity,
            expansion_add=self._expansion_add,
            expansion_search=self._expansion_search,
        )

    def _drop(self, labels: list[int]) -> None:
        if not labels:
            return
        for label in labels:
            del self._id_of[label]
        self._index.remove(np.array(labels, dtype=np.uint64))


def _set_expansion_search(graph: Index, ef: int) -> None:
    # usearch declares this property's setter apart from its getter, which mypy reads as read-only
    setattr(graph, "expansion_search", ef)  # noqa: B010


def _decode_labels(pairs: object, next_label: int) -> dict[str, int]:
    if not isinstance(pairs, list):
        raise ValueError("corrupt ANN index snapshot: bad ids")
    label_of: dict[str, int] = {}
    for pair in pairs:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], int)
            or not 0 <= pair[1] < next_label
        ):
            raise ValueError("corrupt ANN index snapshot: bad ids")
        label_of[pair[0]] = pair[1]
    if len(label_of) != len(pairs) or len(set(label_of.values())) != len(pairs):
        raise ValueError("corrupt ANN index snapshot: repeated ids or labels")
    return label_of
