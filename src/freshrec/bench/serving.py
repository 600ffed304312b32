"""Serving: a real ``freshrec serve`` on a built data directory, loaded from a separate process.

The state is built once by :func:`freshrec.bench.ingest.ingest_point` (``build_dir``), then served by
``freshrec serve --data-dir DIR --clock event`` in its own process. The load generator
(:mod:`freshrec.bench.loadgen`) runs in a third process and measures, in order:

1. freshness: a purchase of the user's top item is POSTed and the user's ``personalized`` answer is read
   until the item has left it (purchased items are excluded): POST sent → visible, p50/p99;
2. open-loop load at each rate against each strategy: p50/p99/p99.9 from the scheduled send time, errors;
3. maximum throughput (closed loop, several connections) of each strategy and of ``/health`` (an empty
   endpoint of the same server), as the ratio strategy / empty.

After every run the load generator waits until ``/health`` answers within 20 ms again: the server still
processes the requests the client gave up on, and that backlog must not be charged to the next run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from freshrec.bench import loadgen
from freshrec.bench.child import Reporter
from freshrec.bench.ingest import EMBED_DIM
from freshrec.bench.processes import stop_process

USER_STRATEGIES = (
    "personalized",
    "session",
    "trending",
    "trending_for_you",
    "covisit",
    "similar_content",
    "cf",
    "hybrid",
)
SERVER_ENV = {
    "FRESHREC_EMBEDDINGS__MODEL": f"precomputed:{EMBED_DIM}",
    "FRESHREC_CF__RETRAIN_EVERY_SECONDS": "0",
    # no snapshot of the whole state in the middle of a measurement (the log replayed at start is kept)
    "FRESHREC_STORAGE__SNAPSHOT_EVERY_EVENTS": str(10**12),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent PID, user + system CPU seconds of it and its reaped children) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime, stime, then cutime, cstime: the time of children it reaped (a reader that was replaced)
    ticks = sum(int(f) for f in fields[11:15])
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (readers exit only when the server stops)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                parents[int(entry)], cpu[int(entry)] = found
    total = 0.0
    for pid, seconds in cpu.items():
        up = pid
        while up in parents and up != root:
            up = parents[up]
        if up == root:
            total += seconds
    return total


class Server:
    """``freshrec serve --data-dir DIR --clock event`` on a free port; stopped by PID on exit."""

    def __init__(
        self, data_dir: Path, start_timeout: float = 1800.0, workers: int = 1, code: Path | None = None
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        #: another checkout's ``src`` to serve from (a before/after comparison in one run of the bench)
        self.code = code
        self.port = free_port()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"
        #: seconds from the process start to the first answer of /health (loading the state)
        self.start_s: float | None = None

    def __enter__(self) -> Server:
        exe = Path(sys.executable).with_name("freshrec")
        args = [
            str(exe),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--clock",
            "event",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        started = time.perf_counter()
        env = {**os.environ, **SERVER_ENV}
        if self.code is not None:
            env["PYTHONPATH"] = str(self.code)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).raise_for_status()
                self.start_s = time.perf_counter() - started
                return self
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"the server did not start; its log:\n{self.log.read_text()[-4000:]}"
                    ) from None
                time.sleep(0.2)

    def rss_bytes(self) -> int:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server's process tree so far (the supervisor, writer, readers)."""
        assert self.process is not None
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, 60)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def load_job(
    reporter: Reporter,
    port: int,
    users: Sequence[str],
    strategies: Sequence[str],
    rates: Sequence[float],
    seconds: float,
    throughput_seconds: float,
    probes: int,
    fresh_ts: float,
) -> dict[str, Any]:
    """Everything the load generator measures (see the module's docstring); runs in its own process."""
    started, cpu = time.perf_counter(), os.times()
    paths = {s: [f"/v1/users/{u}/recommendations?k=20&strategy={s}" for u in users] for s in strategies}
    out: dict[str, Any] = {"strategies": {}, "throughput": {}}
    steps = len(strategies) * (len(rates) + 1) + 2
    done = 0
    reporter.step("serving", done, steps)
    for s in strategies:  # warm-up: caches, lazily built indexes, the first CF fold-ins
        loadgen.closed_loop(port, paths[s], seconds=min(1.0, throughput_seconds), connections=2)
    out["freshness"] = loadgen.freshness(port, users, fresh_ts, probes)
    done += 1
    reporter.step("serving", done, steps)
    for s in strategies:
        runs = {}
        for rate in rates:
            run = loadgen.open_loop(port, paths[s], rate, seconds)
            run["drain_seconds"] = loadgen.drain(port)  # abandoned requests must not slow the next run
            runs[str(int(rate))] = run
            done += 1
            reporter.step("serving", done, steps)
        out["strategies"][s] = runs
    out["throughput"]["health"] = loadgen.closed_loop(port, ["/health"], throughput_seconds)
    loadgen.drain(port)
    done += 1
    reporter.step("serving", done, steps)
    for s in strategies:
        out["throughput"][s] = loadgen.closed_loop(port, paths[s], throughput_seconds)
        loadgen.drain(port)
        done += 1
        reporter.step("serving", done, steps)
    empty = out["throughput"]["health"]["per_s"]
    out["throughput_ratio_vs_empty"] = {s: out["throughput"][s]["per_s"] / empty for s in strategies}
    end = os.times()
    wall = time.perf_counter() - started
    out["loadgen_cpu"] = {
        "cpu_s": end.user + end.system - cpu.user - cpu.system,
        "wall_s": wall,
        "cores": (end.user + end.system - cpu.user - cpu.system) / wall,
    }
    return out
