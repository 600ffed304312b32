"""Feeding records into freshrec: over HTTP to a server, or straight into a data directory."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx

from freshrec.config import Settings
from freshrec.datasets.files import Kind
from freshrec.errors import InvalidInput
from freshrec.storage.datadir import DataDir


class Sink(Protocol):
    """Where replayed records go."""

    def events(self, batch: list[dict[str, Any]]) -> None: ...

    def items(self, batch: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class RejectedBatch(Exception):
    """The receiver refused a batch; the message carries its reasons."""


class HttpSink:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _post(self, path: str, batch: list[dict[str, Any]]) -> None:
        response = self.client.post(path, json=batch)
        if response.status_code >= 400:
            try:
                body = response.json()
                details = "; ".join(
                    f"#{d['index']} {d['field']}: {d['message']}" for d in body.get("details", [])[:10]
                )
                message = f"{body.get('error')}{' — ' + details if details else ''}"
            except ValueError:
                message = response.text[:500]
            raise RejectedBatch(f"{path} answered {response.status_code}: {message}")

    def events(self, batch: list[dict[str, Any]]) -> None:
        self._post("/v1/events", batch)

    def items(self, batch: list[dict[str, Any]]) -> None:
        self._post("/v1/items", batch)

    def close(self) -> None:
        self.client.close()


class DataDirSink:
    """Writes into a data directory that no server has open (the directory is locked meanwhile)."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.datadir = DataDir(path, settings)
        self.engine = self.datadir.open_engine()

    def events(self, batch: list[dict[str, Any]]) -> None:
        with _rejected():
            self.engine.ingest(batch)
        self.datadir.maybe_snapshot()

    def items(self, batch: list[dict[str, Any]]) -> None:
        with _rejected():
            self.engine.upsert_items(batch)

    def close(self) -> None:
        self.datadir.close()


@contextmanager
def _rejected() -> Iterator[None]:
    """Re-raise the engine's :class:`InvalidInput` as a :class:`RejectedBatch` naming the problems."""
    try:
        yield
    except InvalidInput as exc:
        details = "; ".join(f"#{d.index} {d.field}: {d.message}" for d in exc.details[:10])
        raise RejectedBatch(f"{exc.error}{' — ' + details if details else ''}") from None


def batched(
    records: Iterable[tuple[Kind, dict[str, Any]]], size: int
) -> Iterator[tuple[Kind, list[dict[str, Any]]]]:
    """Consecutive records of one kind, in batches of at most ``size`` (order is kept)."""
    kind: Kind | None = None
    batch: list[dict[str, Any]] = []
    for record_kind, record in records:
        if record_kind != kind or len(batch) >= size:
            if batch and kind is not None:
                yield kind, batch
            kind, batch = record_kind, []
        batch.append(record)
    if batch and kind is not None:
        yield kind, batch


class Pacer:
    """Sleeps so that ``rate`` records per second are not exceeded (None = as fast as possible)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.perf_counter()
        self.sent = 0

    def wait(self, count: int) -> None:
        self.sent += count
        if not self.rate:
            return
        ahead = self.sent / self.rate - (time.perf_counter() - self.started)
        if ahead > 0:
            time.sleep(ahead)
