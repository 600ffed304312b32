"""The catalog and the CF model shared by the processes of a distributed deployment, kept in the state store.

Why the state store (Redis) and not a topic or a file share: catalog changes must be atomic with their
effects on the views (an item moving category moves its entries in the popularity and trending rankings),
and only the state store's batch gives that; every process needs the whole catalog in memory anyway (the
category/brand/tier indexes and the vector index answer requests), so the store holds the current item of
each id plus a change log that each process tails. A process starting up reads every item, then follows
the log; items carry their embeddings, so no replica recomputes a vector.

The CF model is a blob beside them with a version: ``freshrec train`` (or a worker) writes it, and API
replicas load the new version the next time they look (every few seconds).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from freshrec.cf.model import CFModel
from freshrec.state.base import LogGap, StateStore

ITEMS = "catalog_items"
CHANGES = "catalog_changes"
MODELS = "models"
CF_MODEL = "cf-als"
READ_LIMIT = 10_000


class StoreCatalog:
    """:class:`freshrec.engine.SharedCatalog` on a state store's documents and change log."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.position: str | None = None  # the last change mirrored; None: nothing read yet

    def publish(self, change: Mapping[str, Any]) -> None:
        blob = orjson.dumps(change)
        if change["op"] == "delete":
            self.store.doc_put(ITEMS, change["item_id"], None)
        else:
            self.store.doc_put(ITEMS, change["item"]["item_id"], blob)
        self.store.log_append(CHANGES, blob)

    def changes(self) -> list[dict[str, Any]]:
        if self.position is None:
            return self._everything()
        out: list[dict[str, Any]] = []
        while True:
            try:
                entries = self.store.log_read(CHANGES, self.position, READ_LIMIT)
            except LogGap:  # this process fell behind the log's retention: start over from the items
                return self._everything()
            out.extend(orjson.loads(blob) for _, blob in entries)
            if entries:
                self.position = entries[-1][0]
            if len(entries) < READ_LIMIT:
                return out

    def _everything(self) -> list[dict[str, Any]]:
        # the log position first: a change made while the items are read is read again (and idempotent)
        self.position = self.store.log_tail(CHANGES)
        current = [orjson.loads(blob) for blob in self.store.docs(ITEMS).values()]
        return [*current, *self.changes()]

    # -- the CF model ---------------------------------------------------------------------------------
    def put_model(self, model: CFModel) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.npz"
            model.save(path)
            blob = path.read_bytes()
        self.store.begin()
        self.store.doc_put(MODELS, CF_MODEL, blob)
        self.store.doc_put(MODELS, f"{CF_MODEL}.version", str(model.info.version).encode())
        self.store.commit()

    def model_version(self) -> int | None:
        raw = self.store.doc_get(MODELS, f"{CF_MODEL}.version")
        return None if raw is None else int(raw)

    def get_model(self) -> CFModel | None:
        blob = self.store.doc_get(MODELS, CF_MODEL)
        if blob is None:
            return None
        fd, name = tempfile.mkstemp(suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            return CFModel.load(Path(name))
        finally:
            os.unlink(name)
