"""Real ``freshrec serve`` processes for end-to-end tests.

``start_server(...)`` runs the console script on a free loopback port with its own data directory, waits for
``/health`` and hands back a :class:`Server`; every process a test started is stopped by its PID when the test
ends (SIGTERM, then SIGKILL after a timeout), whatever the test did to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest


def _console_script() -> Path:
    beside = Path(sys.executable).with_name("freshrec")
    if beside.exists():
        return beside
    found = shutil.which("freshrec")
    if found is None:
        raise RuntimeError("the freshrec console script is not installed next to this Python or on PATH")
    return Path(found)


FRESHREC = _console_script()
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
#: Settings tests must not inherit from the shell that runs them.
_SCRUBBED_PREFIX = "FRESHREC_"


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``freshrec serve`` on a data directory; it can be stopped, killed and started again on it."""

    def __init__(
        self,
        data_dir: Path | None,
        logs: Path,
        clock: str,
        env: Mapping[str, str],
        ephemeral: bool,
        workers: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.logs = logs
        self.clock = clock
        self.env = dict(env)
        self.ephemeral = ephemeral
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> httpx.Client:
        """An HTTP client for the running process (a new one after each start)."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30.0)
        return self._client

    @property
    def stderr_path(self) -> Path:
        return self.logs / f"stderr-{self.starts}.txt"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> Server:
        assert self.process is None, "already running"
        self.starts += 1
        args = [
            str(FRESHREC),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--clock",
            self.clock,
        ]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        if self.ephemeral:
            args.append("--ephemeral")
        else:
            assert self.data_dir is not None
            args += ["--data-dir", str(self.data_dir)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIX)}
        env.update(self.env)
        with (
            (self.logs / f"stdout-{self.starts}.txt").open("wb") as out,
            self.stderr_path.open("wb") as err,
        ):
            self.process = subprocess.Popen(args, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self.process = None
                    pytest.fail(f"freshrec serve exited at start-up; stderr:\n{self.stderr()}")
                try:
                    if probe.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill9()
        pytest.fail(
            f"freshrec serve did not answer /health within {STARTUP_TIMEOUT} s; stderr:\n{self.stderr()}"
        )

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (graceful: the server writes a snapshot), SIGKILL if it outlives ``timeout``."""
        self._close_client()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"freshrec serve ignored SIGTERM for {timeout} s") from None

    def kill9(self) -> None:
        """SIGKILL: a crash, nothing gets to run in the server."""
        self._close_client()
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, crash: bool = False) -> Server:
        """Stop (gracefully, or with kill -9 when ``crash``) and start again on the same data directory."""
        if crash:
            self.kill9()
        else:
            self.stop()
        return self.start()

    # -- small HTTP helpers ---------------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, (path, params, response.status_code, response.text)
        return response.json()

    def post_events(self, events: Any) -> httpx.Response:
        return self.client.post("/v1/events", json=events)

    def send_events(self, events: Any) -> dict[str, Any]:
        """Post events that must be accepted; the 202 body."""
        response = self.post_events(events)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def put_items(self, items: list[dict[str, Any]]) -> None:
        response = self.client.post("/v1/items", json=items)
        assert response.status_code == 200, response.text


class StartServer(Protocol):
    def __call__(
        self,
        *,
        clock: str = "wall",
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        ephemeral: bool = False,
        workers: int | None = None,
    ) -> Server: ...


def _server_factory(base: Path) -> tuple[StartServer, Callable[[], None]]:
    started: list[Server] = []

    def start(
        *,
        clock: str = "wall",
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        ephemeral: bool = False,
        workers: int | None = None,
    ) -> Server:
        n = len(started)
        logs = base / f"server-{n}"
        logs.mkdir(parents=True)
        directory = None if ephemeral else (data_dir or base / f"data-{n}")
        server = Server(directory, logs, clock, env or {}, ephemeral, workers)
        started.append(server)
        return server.start()

    def stop_all() -> None:
        problems = []
        for server in started:
            try:
                server.stop()
            except AssertionError as exc:  # still stop the others
                problems.append(str(exc))
        assert not problems, problems

    return start, stop_all


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers for one test; all of them are stopped when it ends."""
    start, stop_all = _server_factory(tmp_path)
    yield start
    stop_all()


@pytest.fixture(scope="module")
def module_start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Like ``start_server``, for servers shared by the tests of one module."""
    start, stop_all = _server_factory(tmp_path_factory.mktemp("servers"))
    yield start
    stop_all()


@pytest.fixture
def server(start_server: StartServer) -> Server:
    """A server on a fresh data directory, with the wall clock (events without a timestamp happen now)."""
    return start_server()
