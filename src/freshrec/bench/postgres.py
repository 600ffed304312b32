"""A throwaway PostgreSQL server for the benchmark's "just use SQL" alternative (SPEC §9).

``PostgresServer`` runs the server binaries of the Debian ``postgresql`` package (or those in
``FRESHREC_POSTGRES_BIN``): ``initdb`` into a temporary directory (trust authentication, no password), a
postmaster on a free loopback port and on a unix socket inside that directory, with durability turned off
(nothing in it outlives the benchmark). On exit the server is stopped by its PID and the directory removed.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` account (created by the Debian
package), or ``nobody`` when there is none.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from freshrec.bench.processes import stop_process

BIN_ENV = "FRESHREC_POSTGRES_BIN"
SUPERUSER = "freshrec"
DATABASE = "postgres"

# Durability off (the data is thrown away), memory sized for a benchmark on a small machine, no JIT
# (it compiles each heavy query again, adding tens of milliseconds to a per-request query).
BENCH_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "2GB",
    "jit": "off",
    "max_connections": "20",
}


def find_bin_dir() -> Path:
    """The directory of ``initdb`` and ``postgres``: ``$FRESHREC_POSTGRES_BIN``, Debian's, ``pg_config``'s."""
    override = os.environ.get(BIN_ENV)
    if override:
        path = Path(override)
        if not _has_server(path):
            raise RuntimeError(f"{BIN_ENV}={override} holds no `initdb` and `postgres` executables")
        return path
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)],
        reverse=True,
    )
    for path in debian:
        if _has_server(path):
            return path
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if out.returncode == 0 and _has_server(path):
            return path
    raise RuntimeError(
        "no PostgreSQL server binaries found (initdb, postgres): install the Debian `postgresql` package "
        f"(apt-get install postgresql) or set {BIN_ENV} to the directory that holds them"
    )


def _has_server(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "postgres"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A PostgreSQL server in a temporary directory, for the time of a ``with`` block.

    ``dsn`` connects over loopback TCP, ``socket_dsn`` over the unix socket; both as the superuser
    ``freshrec`` to the ``postgres`` database, without a password.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        self.settings = {**BENCH_SETTINGS, **(settings or {})}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.version = ""
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={DATABASE}"

    @property
    def socket_dsn(self) -> str:
        return f"host={self.directory} port={self.port} user={SUPERUSER} dbname={DATABASE}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        account = _server_account()
        self.directory = Path(tempfile.mkdtemp(prefix="freshrec-postgres-"))
        try:
            if account is not None:
                os.chown(self.directory, account.pw_uid, account.pw_gid)
            run_as = _run_as(account)
            data = self.directory / "data"
            init = subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",  # byte order for text, as Python compares item ids
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                cwd=self.directory,
                check=False,
                **run_as,
            )
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
            self.port = free_port()
            options = {
                **self.settings,
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": str(self.directory),
            }
            args = [str(self.bin_dir / "postgres"), "-D", str(data)]
            for name, value in options.items():
                args += ["-c", f"{name}={value}"]
            with open(self.directory / "server.log", "wb") as log:
                self.process = subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, **run_as
                )
            self.version = self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> str:
        import psycopg

        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    return "" if row is None else str(row[0])
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {self.startup_timeout:.0f} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        if self.directory is None:
            return ""
        path = self.directory / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster, SIGKILL after ``stop_timeout``; remove the directory."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, signal.SIGINT, self.stop_timeout)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is no `postgres` or `nobody` account to run PostgreSQL as")


def _run_as(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess`` arguments that drop to ``account`` in the child, before it executes the server.

    Dropping in the child itself (``setgid``/``setgroups``/``setuid``) keeps the postmaster the direct child,
    so its PID is the process to signal.
    """
    if account is None:
        return {}
    env = {**os.environ, "HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [], "env": env}
