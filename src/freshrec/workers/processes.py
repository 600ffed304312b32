"""``freshrec serve --workers N``: one writer and N-1 readers on one listening socket over one data directory.

The layout (docs/serving.md says why):

* the **main process** opened the data directory and loaded the engine; it is the single writer. It makes
  the listening socket, a Unix socket for the readers' writes and the shared page
  (:class:`~freshrec.workers.shared.SharedState`), forks the supervisor, and serves HTTP on both sockets
  (reads too: it is one of the N).
* the **supervisor** (forked before any event loop or thread of the server exists) forks the N-1 readers,
  restarts one that dies, keeps its own copy of the engine caught up with the journal every second (so a
  replacement starts current, without loading a snapshot), and stops the readers, by PID, when told to.
* each **reader** runs the same app on the same listening socket — whichever process accepts a connection
  answers its reads — and forwards writes to the writer (:mod:`freshrec.workers.reader`).

A reader's memory is the writer's, copy-on-write: the pages stay shared until one side changes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from freshrec.api import create_app
from freshrec.api.app import Runtime, Service
from freshrec.api.fast import FastLane
from freshrec.api.server import Server
from freshrec.engine import Engine
from freshrec.storage.datadir import DataDir
from freshrec.workers.follower import Follower
from freshrec.workers.reader import Forwarder, ReaderRuntime, WorkerFront
from freshrec.workers.shared import SharedState

log = logging.getLogger(__name__)
#: how often the supervisor's own engine catches up with the journal
CATCH_UP_SECONDS = 1.0
#: a reader that dies sooner than this after its start is restarted only after this long (no fork storm)
RESTART_BACKOFF_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def uvicorn_config(app: Any, grace: float) -> uvicorn.Config:
    """The server settings of every process: uvloop and httptools, no access log."""
    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(grace),
        lifespan="on",
    )


class WriterRuntime(Runtime):
    """The embedded runtime of the writer: after every write and model swap it publishes to the readers."""

    def __init__(self, engine: Engine, datadir: DataDir, shared: SharedState, workers: int) -> None:
        super().__init__(engine, datadir)
        self.shared = shared
        self.workers = workers

    async def journal_and_apply(self, records: list[dict[str, Any]], apply: Callable[[], Any]) -> Any:
        try:
            return await super().journal_and_apply(records, apply)
        finally:
            assert self.datadir is not None
            self.shared.publish(self.datadir.log.position(), duplicates=self.engine.duplicate_events)

    def models_swapped(self) -> None:
        assert self.datadir is not None
        self.shared.bump_generation(self.datadir.log.position())

    def status(self) -> dict[str, Any]:
        return {"mode": "embedded", "process": "writer", "workers": self.workers}


class _WriterServer(Server):
    """The writer's uvicorn: a stop signal also stops the readers (through the supervisor) at once."""

    supervisor: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.supervisor is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.supervisor, signal.SIGTERM)
        super().handle_exit(sig, frame)


def serve(
    engine: Engine,
    datadir: DataDir,
    services: list[Service],
    host: str,
    port: int,
    workers: int,
    grace: float,
) -> None:
    """Serve ``engine`` from ``workers`` processes until a stop signal; the readers stopped before return."""
    listener = socket.create_server((host, port), backlog=2048)
    private = tempfile.mkdtemp(prefix="freshrec-writer-")
    writer_path = os.path.join(private, "writer.sock")
    writer_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    writer_socket.bind(writer_path)
    writer_socket.listen(1024)
    shared = SharedState()
    start = datadir.log.position()
    shared.publish(start, 0)
    engine.journal = None  # the supervisor and readers inherit the engine: only the runtime journals
    follower = Follower(engine, shared, datadir.path, start, 0)
    inherited = [datadir.lock_fileno(), writer_socket.fileno()]  # the writer's alone
    supervisor = _fork_supervisor(follower, listener, writer_path, workers - 1, grace, inherited)
    runtime = WriterRuntime(engine, datadir, shared, workers)
    runtime.services.extend(services)
    app = create_app(engine, datadir, runtime=runtime)
    server = _WriterServer(uvicorn_config(WorkerFront(FastLane(app)), grace), runtime)
    server.supervisor = supervisor
    # uvicorn raises a captured SIGTERM again after its graceful shutdown: let that return here
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: None)
    try:
        server.run(sockets=[listener, writer_socket])
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_supervisor(supervisor, shared, grace)
        writer_socket.close()
        listener.close()
        shutil.rmtree(private, ignore_errors=True)


def _fork_supervisor(
    follower: Follower,
    listener: socket.socket,
    writer_path: str,
    readers: int,
    grace: float,
    inherited: list[int],
) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        for fd in inherited:  # the data directory's lock and the writer's socket stay the writer's
            os.close(fd)
        _die_with_parent(signal.SIGKILL, parent)
        status = Supervisor(follower, listener, writer_path, readers, grace, parent).run()
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _stop_supervisor(pid: int, shared: SharedState, grace: float) -> None:
    """Stop the supervisor (which stops the readers); any reader still alive then is killed by PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace + 5.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for reader in shared.readers():
        with contextlib.suppress(ProcessLookupError):
            os.kill(reader, signal.SIGKILL)


def _die_with_parent(sig: int, parent: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


class Supervisor:
    """Forks the readers, restarts them, keeps a current copy of the engine to fork them from."""

    def __init__(
        self,
        follower: Follower,
        listener: socket.socket,
        writer_path: str,
        readers: int,
        grace: float,
        parent: int,
    ) -> None:
        self.follower = follower
        self.listener = listener
        self.writer_path = writer_path
        self.wanted = readers
        self.grace = grace
        self.parent = parent
        self.readers: dict[int, float] = {}  # pid -> started (monotonic)
        self.stopping = False

    def run(self) -> int:
        def stop(sig: int, frame: FrameType | None) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for _ in range(self.wanted):
            self.spawn()
        caught_up = time.monotonic()
        while not self.stopping and os.getppid() == self.parent:
            time.sleep(0.05)
            self.reap()
            if time.monotonic() - caught_up >= CATCH_UP_SECONDS:
                self.follower.follow()
                caught_up = time.monotonic()
        self.stop_readers()
        return 0

    def spawn(self) -> None:
        self.follower.follow()  # the new reader starts where the writer is
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = _reader_main(self.follower, self.listener, self.writer_path, self.grace)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        self.readers[pid] = time.monotonic()
        self.follower.shared.set_readers(list(self.readers))

    def reap(self) -> None:
        while self.readers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            started = self.readers.pop(pid, None)
            self.follower.shared.set_readers(list(self.readers))
            if started is None or self.stopping:
                continue
            log.warning("reader %d ended (%s); starting another", pid, _exit_text(status))
            if time.monotonic() - started < RESTART_BACKOFF_SECONDS:
                time.sleep(RESTART_BACKOFF_SECONDS)
            self.spawn()

    def stop_readers(self) -> None:
        for pid in self.readers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 2.0
        while self.readers and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.readers.pop(pid, None)
            else:
                time.sleep(0.02)
        for pid in self.readers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.readers.clear()
        self.follower.shared.set_readers([])


def _exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {-code}" if code < 0 else f"exit status {code}"


def _reader_main(follower: Follower, listener: socket.socket, writer_path: str, grace: float) -> int:
    """A reader process: the app over the forked engine, caught up before every read."""
    supervisor = os.getppid()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent(signal.SIGKILL, supervisor)
    engine = follower.engine
    engine.listeners = []  # a feature sink listens in the writer only
    runtime = ReaderRuntime(engine, follower)
    app = create_app(engine, None, runtime=runtime)
    forwarder = Forwarder(writer_path)
    uvicorn.Server(uvicorn_config(WorkerFront(FastLane(app), forwarder), grace)).run(sockets=[listener])
    return 0
