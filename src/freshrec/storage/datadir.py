"""The embedded data directory: ``log/`` (durable records), ``snapshots/``, ``models/``, and a lock.

Writes are journaled to the log before they are applied, and acknowledged after both. A restart loads
the newest snapshot and replays the log after the position the snapshot recorded, which gives the state
the process had when it stopped — however it stopped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from freshrec.config import Settings
from freshrec.engine import Engine, SnapshotVersionError
from freshrec.events import Event
from freshrec.ranker.service import log_events
from freshrec.storage.log import EventLog, Position, _fsync_dir

log = logging.getLogger(__name__)
_SNAPSHOT = re.compile(r"^snapshot-(\d{8})-(\d{12})\.bin$")
KEEP_SNAPSHOTS = 2


class DataDirLocked(Exception):
    """Another process has this data directory open."""


class DataDir:
    """Owns a data directory and journals an engine's writes into it."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        path.mkdir(parents=True, exist_ok=True)
        self._lock: IO[str] = (path / "LOCK").open("a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DataDirLocked(
                f"data directory {path} is in use by another freshrec process; "
                "stop it or use another --data-dir"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        storage = settings.storage
        self.log = EventLog(path / "log", storage.segment_bytes, storage.fsync)
        self.snapshots = path / "snapshots"
        self.snapshots.mkdir(exist_ok=True)
        self.records_since_snapshot = 0
        self.engine: Engine | None = None

    # -- Journal ------------------------------------------------------------------------------------
    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.log.append(records)
        self.records_since_snapshot += sum(_size(r) for r in records)

    def logged_events(self) -> list[Event]:
        """Every event of the log, in log order (the ranker's training replay reads them)."""
        return log_events(record for record, _ in self.log.read_from(Position(0, 0)))

    # -- lifecycle ----------------------------------------------------------------------------------
    def open_engine(self, progress: Callable[[int], None] | None = None) -> Engine:
        """An engine holding this directory's state: newest snapshot + log tail; journaling from now on."""
        engine = Engine(self.settings)
        engine.cf.attach(self.path / "models")
        engine.ranker.attach(self.path / "models")
        start = Position(0, 0)
        newest = self._newest_snapshot()
        if newest is not None:
            path, start = newest
            try:
                engine.restore(path.read_bytes())
                log.info("loaded snapshot %s", path.name)
            except SnapshotVersionError as exc:
                # the log is never trimmed: the whole state is rebuilt from it
                log.warning("%s: %s; replaying the whole log instead", path.name, exc)
                engine = Engine(self.settings)
                engine.cf.attach(self.path / "models")
                engine.ranker.attach(self.path / "models")
                start = Position(0, 0)
        replayed = 0
        for record, _ in self.log.read_from(start):
            engine.apply_record(record)
            replayed += _size(record)
            if progress is not None:
                progress(replayed)
        if progress is not None:
            progress(replayed)
        self.records_since_snapshot = replayed
        engine.journal = self
        self.engine = engine
        return engine

    def maybe_snapshot(self) -> bool:
        if self.engine is None or self.records_since_snapshot < self.settings.storage.snapshot_every_events:
            return False
        self.snapshot()
        return True

    def snapshot(self) -> Path:
        """Write the engine's state with the log position it covers; keep the newest few."""
        assert self.engine is not None
        position = self.log.position()
        name = f"snapshot-{position.segment:08d}-{position.offset:012d}.bin"
        final = self.snapshots / name
        tmp = final.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(self.engine.snapshot())
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        _fsync_dir(self.snapshots)
        self.records_since_snapshot = 0
        for old in self._snapshot_files()[:-KEEP_SNAPSHOTS]:
            old[0].unlink(missing_ok=True)
        return final

    def close(self, snapshot: bool = True) -> None:
        if snapshot and self.engine is not None and self.records_since_snapshot:
            self.snapshot()
        self.log.close()
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        self._lock.close()

    def _snapshot_files(self) -> list[tuple[Path, Position]]:
        found = []
        for path in self.snapshots.iterdir():
            match = _SNAPSHOT.match(path.name)
            if match:
                found.append((path, Position(int(match.group(1)), int(match.group(2)))))
        return sorted(found, key=lambda f: f[1])

    def _newest_snapshot(self) -> tuple[Path, Position] | None:
        files = self._snapshot_files()
        return files[-1] if files else None


def _size(record: Mapping[str, Any]) -> int:
    """Events (or items) a journal record holds."""
    return len(record.get("events") or record.get("items") or ()) or 1
