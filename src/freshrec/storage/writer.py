"""Writing a snapshot without stopping ingestion: a forked copy of the process writes it.

``fork`` gives the child the parent's memory copy-on-write, frozen at the moment of the call: the child writes
that state out while the parent goes on applying events, and only the pages the parent changes meanwhile are
copied (the technique of Redis's ``BGSAVE``). The parent is held for the ``fork`` itself — the time to copy
the page tables, a few milliseconds per GB of state.

The child touches nothing but the engine's arrays and the snapshot directory, and leaves with ``os._exit``
(no exit handlers, no buffers of the parent flushed twice). It closes its copy of the data directory's lock
first, so the lock stays the parent's alone.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Protocol

from freshrec.storage import snapshot


class Snapshots(Protocol):
    def snapshot(self) -> dict[str, object]: ...


class SnapshotWriter:
    """A child process writing one snapshot; ``records`` it covers count again if it fails."""

    def __init__(self, pid: int, path: Path, records: int, pause_s: float) -> None:
        self.pid = pid
        self.path = path
        self.records = records
        self.pause_s = pause_s
        self.status: int | None = None
        self._started = time.perf_counter()
        self.seconds: float | None = None

    @classmethod
    def fork(cls, engine: Snapshots, final: Path, lock_fd: int, records: int) -> SnapshotWriter:
        started = time.perf_counter()
        with warnings.catch_warnings():
            # Python ≥ 3.12 warns about fork in a threaded process: the child here runs no other thread's
            # code and takes no lock another thread may hold (no logging, no imports)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(lock_fd)
                snapshot.write(engine.snapshot(), final)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        return cls(pid, final, records, time.perf_counter() - started)

    def running(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._done(status)
        return self.status is None

    def wait(self) -> bool:
        """Wait for the child; True when it wrote the snapshot."""
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self._done(status)
        return self.status == 0

    def _done(self, status: int) -> None:
        self.status = os.waitstatus_to_exitcode(status)
        self.seconds = time.perf_counter() - self._started
