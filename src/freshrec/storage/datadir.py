"""The embedded data directory: ``log/`` (durable records), ``snapshots/``, ``models/``, and a lock.

Writes are journaled to the log before they are applied, and acknowledged after both. A restart loads
the newest snapshot and replays the log after the position the snapshot recorded, which gives the state
the process had when it stopped — however it stopped.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from freshrec.config import Settings
from freshrec.engine import Engine, SnapshotVersionError
from freshrec.events import Event
from freshrec.ranker.service import log_events
from freshrec.storage import snapshot as on_disk
from freshrec.storage.log import EventLog, Position
from freshrec.storage.writer import SnapshotWriter

log = logging.getLogger(__name__)
_SNAPSHOT = re.compile(r"^snapshot-(\d{8})-(\d{12})(\.bin)?$")
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
        self._writer: SnapshotWriter | None = None
        #: seconds the newest snapshot took to write, and the pause of the newest background one
        self.last_snapshot_s: float | None = None
        self.last_pause_s: float | None = None

    def lock_fileno(self) -> int:
        """The file descriptor holding the directory's lock (a forked process closes its copy)."""
        return self._lock.fileno()

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
        engine, start = self._restored()
        replayed = 0
        for record, _ in self.log.read_from(start):
            engine.apply_record(record)
            replayed += _size(record)
            if progress is not None:
                progress(replayed)
        if progress is not None:
            progress(replayed)
        self.records_since_snapshot = replayed
        gc.freeze()  # what was loaded lives on: no collection walks it again
        engine.journal = self
        self.engine = engine
        return engine

    def _restored(self) -> tuple[Engine, Position]:
        """An engine with the newest snapshot that loads, and the log position it covers.

        A snapshot of another layout, or one that cannot be read, is passed over for the one before it;
        with none, the engine is empty and the whole log (which is never trimmed) rebuilds the state.
        """
        for path, position in reversed(self._snapshot_files()):
            engine = self._new_engine()
            try:
                engine.restore(on_disk.read(path))
            except (SnapshotVersionError, on_disk.SnapshotError) as exc:
                log.warning("snapshot %s not loaded (%s); trying an older one, else the log", path.name, exc)
                continue
            log.info("loaded snapshot %s", path.name)
            return engine, position
        return self._new_engine(), Position(0, 0)

    def _new_engine(self) -> Engine:
        engine = Engine(self.settings)
        engine.cf.attach(self.path / "models")
        engine.ranker.attach(self.path / "models")
        return engine

    def maybe_snapshot(self) -> bool:
        """Snapshot in the background once ``snapshot_every_events`` records were logged since the last."""
        if self.engine is None or self.records_since_snapshot < self.settings.storage.snapshot_every_events:
            return False
        if self._writer is not None and self._writer.running():
            return False  # the previous one is still being written: the next record asks again
        self.snapshot(background=True)
        return True

    def snapshot(self, *, background: bool = False) -> Path:
        """Write the engine's state with the log position it covers; keep the newest few.

        ``background``: write it from a forked copy of this process (copy-on-write pages: the caller is
        held only for the ``fork``, and memory grows only by the pages changed meanwhile); the returned
        path appears when that process is done (:meth:`wait_snapshot`). The caller must hold whatever
        keeps writes out of the engine (the server's write lock) for the duration of this call.
        """
        assert self.engine is not None
        self.wait_snapshot()
        position = self.log.position()
        final = self.snapshots / f"snapshot-{position.segment:08d}-{position.offset:012d}"
        pending, self.records_since_snapshot = self.records_since_snapshot, 0
        if final.exists():  # nothing was logged since that one
            return final
        if background and hasattr(os, "fork"):
            self._writer = SnapshotWriter.fork(self.engine, final, self._lock.fileno(), pending)
            self.last_pause_s = self._writer.pause_s
            return final
        started = time.perf_counter()
        try:
            on_disk.write(self.engine.snapshot(), final)
        except BaseException:
            self.records_since_snapshot += pending  # still to be covered by the next one
            raise
        self.last_snapshot_s = time.perf_counter() - started
        self._prune()
        return final

    def wait_snapshot(self) -> None:
        """Wait for a snapshot being written in the background; on failure its records count again."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        ok = writer.wait()
        if ok:
            self.last_snapshot_s = writer.seconds
            self._prune()
        else:
            self.records_since_snapshot += writer.records
            log.error("writing snapshot %s failed (exit status %s)", writer.path.name, writer.status)

    def _prune(self) -> None:
        for old, _ in self._snapshot_files()[:-KEEP_SNAPSHOTS]:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        for tmp in self.snapshots.glob("*.tmp"):  # left by a crash mid-write
            if self._writer is None:
                shutil.rmtree(tmp, ignore_errors=True)

    def close(self, snapshot: bool = True) -> None:
        self.wait_snapshot()
        if snapshot and self.engine is not None and self.records_since_snapshot:
            try:
                self.snapshot()
            except OSError as exc:  # a full disk: the log holds everything, the next start replays it
                log.error("the final snapshot could not be written (%s); the log is replayed at start", exc)
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
