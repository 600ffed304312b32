"""Item embeddings: computing them for upserted items, and the vector index they live in.

Embeddings are computed before an item write is journaled (in a worker thread by the API, so reads go
on), and the journal record carries the vectors: a restart replays them instead of recomputing, and an
item is findable by ``similar_content`` as soon as its upsert is acknowledged. Items may carry their own
``embedding``; an unchanged text reuses the vector already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from freshrec.catalog import Catalog, ItemIn
from freshrec.config import EmbeddingSettings
from freshrec.embeddings import Embedder, FloatMatrix, open_embedder
from freshrec.errors import FieldProblem, InvalidInput
from freshrec.vectors import open_index
from freshrec.vectors.base import VectorIndex

log = logging.getLogger(__name__)


class ContentIndex:
    """The embedder and the item vector index of one engine (``model = "none"`` turns both off)."""

    def __init__(self, settings: EmbeddingSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.embedder: Embedder | None = None if settings.model == "none" else open_embedder(settings.model)
        self.vectors: VectorIndex | None = (
            None if self.embedder is None else open_index(self.embedder.dim, settings.exact_threshold)
        )

    def text_of(self, item: object) -> str:
        """The text embedded for an item (an incoming one or a catalog one)."""
        parts = [getattr(item, name, None) for name in self.settings.text_fields]
        return "\n".join(p for p in parts if isinstance(p, str) and p.strip())

    def vector_of(self, item_id: str) -> FloatMatrix | None:
        return None if self.vectors is None else self.vectors.vector(item_id)

    def prepare(self, items: Sequence[ItemIn]) -> list[ItemIn]:
        """The items with their ``embedding`` set where it can be: given, reused, or computed (batched)."""
        if self.embedder is None or self.vectors is None:
            return list(items)
        dim = self.embedder.dim
        problems = [
            FieldProblem(n, "embedding", f"has {len(i.embedding)} numbers; this index holds {dim}")
            for n, i in enumerate(items)
            if i.embedding is not None and len(i.embedding) != dim
        ]
        if problems:
            raise InvalidInput(f"{len(problems)} problem(s) in the request; nothing was stored", problems)
        out = list(items)
        todo: list[int] = []
        for n, item in enumerate(items):
            if item.embedding is not None:
                continue
            text = self.text_of(item)
            if not text:
                continue
            old = self.catalog.get(item.item_id)
            kept = self.vectors.vector(item.item_id)
            if old is not None and kept is not None and self.text_of(old) == text:
                out[n] = item.model_copy(update={"embedding": [float(x) for x in kept]})
            else:
                todo.append(n)
        size = self.settings.batch_size
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            vectors = self.embedder.embed([self.text_of(items[n]) for n in chunk])
            for n, vector in zip(chunk, vectors, strict=True):
                out[n] = items[n].model_copy(update={"embedding": [round(float(x), 7) for x in vector]})
        return out

    def apply(self, items: Sequence[ItemIn]) -> None:
        """Store the vectors of upserted items; an item without one leaves the index."""
        if self.vectors is None:
            return
        with_vectors = [i for i in items if i.embedding is not None]
        without = [i.item_id for i in items if i.embedding is None]
        if with_vectors:
            matrix = np.asarray([i.embedding for i in with_vectors], dtype=np.float32)
            self.vectors.upsert([i.item_id for i in with_vectors], matrix)
        if without:
            self.vectors.remove(without)

    def remove(self, item_id: str) -> None:
        if self.vectors is not None:
            self.vectors.remove([item_id])

    def dump(self) -> bytes | None:
        return None if self.vectors is None else self.vectors.dump()

    def load(self, blob: bytes | None) -> None:
        if self.vectors is not None and blob is not None:
            self.vectors.load(blob)
