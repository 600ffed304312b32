"""Backfill: events from warehouse files into an engine (or a server), a batch at a time.

Each batch is validated as ``POST /v1/events`` validates a request, with the same messages; a row with a
problem is reported as a :class:`Reject` naming its file and row (1-based, not counting a CSV header) and
the rest of the batch goes on — nothing is dropped without a report. Accepted rows go through
``Engine.ingest_events``, the write path of the server and of ``freshrec replay``: journaled in the data
directory, then applied to every view, so live events continue on top after the import.

A row without ``event_id`` gets one derived from the file name and its row number, so importing a file
again (after a failure half way, say) changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from freshrec.config import Settings
from freshrec.errors import FieldProblem, InvalidInput
from freshrec.events import Event, validate_events
from freshrec.warehouse.read import UNREADABLE, ColumnMap, Record, read_batches


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that was not imported, and why."""

    file: str
    row: int
    problems: list[dict[str, str]]  # {"field", "message"}, as in a 422 body
    record: Record | None

    def line(self) -> str:
        why = "; ".join(f"{p['field']}: {p['message']}" for p in self.problems)
        return f"{self.file} row {self.row}: {why}"


@dataclass
class ImportStats:
    rows: int = 0
    accepted: int = 0
    applied: int = 0  # accepted less the events applied before (same event_id)
    rejected: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


class EventTarget(Protocol):
    """Where validated events go."""

    def send(self, records: list[Record], events: list[Event]) -> int:
        """Store the events (``records`` are their raw form); returns how many were new."""
        ...


class EngineTarget:
    """An engine (of a data directory, when ``datadir`` is given: snapshots are written as configured)."""

    def __init__(self, engine: Any, datadir: Any = None) -> None:
        self.engine = engine
        self.datadir = datadir

    def send(self, records: list[Record], events: list[Event]) -> int:
        applied = int(self.engine.ingest_events(events).applied)
        if self.datadir is not None:
            self.datadir.maybe_snapshot()
        return applied


def stable_event_id(file_name: str, row: int) -> str:
    """The id of a row that has none: the same every time the same file is imported."""
    return hashlib.blake2b(f"{file_name}#{row}".encode(), digest_size=16).hexdigest()


class Backfill:
    """Imports files into ``target``; ``on_reject`` hears of every row not imported, ``on_batch`` of
    every batch stored (its row count)."""

    def __init__(
        self,
        settings: Settings,
        target: EventTarget,
        columns: ColumnMap,
        batch_size: int = 10_000,
        on_reject: Callable[[Reject], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
        assume_utc: bool = False,
    ) -> None:
        self.settings = settings
        self.target = target
        self.columns = columns
        self.batch_size = min(batch_size, settings.events.max_batch)
        self.on_reject = on_reject
        self.on_batch = on_batch
        self.assume_utc = assume_utc
        self.stats = ImportStats()

    def run(self, files: Iterable[Path], fmt: str = "auto") -> ImportStats:
        started = time.perf_counter()
        for path in files:
            self.stats.files.append(str(path))
            row = 0
            for batch in read_batches(path, fmt, self.columns, self.batch_size, self.assume_utc):
                self.feed(path.name, row, batch)
                row += len(batch)
        self.stats.seconds += time.perf_counter() - started
        return self.stats

    def feed(self, file_name: str, first_row: int, batch: list[Record | None]) -> None:
        """Validate and store one batch whose first record is row ``first_row + 1`` of ``file_name``."""
        records: list[Record] = []
        rows: list[int] = []
        for n, record in enumerate(batch, first_row + 1):
            if record is None:
                continue
            if UNREADABLE in record:
                self._reject(file_name, n, [{"field": "(row)", "message": record[UNREADABLE]}], None)
                continue
            if "event_id" not in record:
                record["event_id"] = stable_event_id(file_name, n)
            records.append(record)
            rows.append(n)
        self.stats.rows += len(batch)
        events = self._valid(file_name, records, rows)
        if events:
            self.stats.applied += self.target.send(records, events)
            self.stats.accepted += len(events)
        if self.on_batch is not None:
            self.on_batch(len(batch))

    def _valid(self, file_name: str, records: list[Record], rows: list[int]) -> list[Event]:
        """The events of ``records``; rejected ones are reported and removed from ``records``."""
        if not records:
            return []
        try:
            return validate_events(records, self.settings.events)
        except InvalidInput as exc:
            if not exc.details:
                raise
            problems = _by_index(exc.details)
        for index, found in sorted(problems.items()):
            self._reject(file_name, rows[index], found, records[index])
        kept = [r for i, r in enumerate(records) if i not in problems]
        records[:] = kept
        return validate_events(kept, self.settings.events) if kept else []

    def _reject(
        self, file_name: str, row: int, problems: list[dict[str, str]], record: Record | None
    ) -> None:
        self.stats.rejected += 1
        if self.on_reject is not None:
            self.on_reject(Reject(file_name, row, problems, record))


def _by_index(details: list[FieldProblem]) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = {}
    for problem in details:
        out.setdefault(problem.index, []).append({"field": problem.field, "message": problem.message})
    return out
