"""Distributed freshness: event accepted by an API replica → visible in that replica's answers.

A Valkey server and a Tansu broker (the launchers of the integration tests), one ``freshrec worker`` and one
``freshrec serve --state redis://... --kafka ...`` replica, each in its own process. The catalog and a warm-up
stream go in through the replica (so through Kafka and the worker); then the probes of
:func:`freshrec.bench.loadgen.freshness` run against the replica: a purchase of the user's top item is
POSTed (202 once the broker acknowledged it) and the user's answer is read every ``poll_ms`` until the item
has left it. Probes are spaced by random pauses of up to 0.5 s (the worker's poll timeout), so they arrive at
random phases of its loop. ``bench/distributed.py`` measures the rest of the distributed mode in depth.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from freshrec.bench import loadgen
from freshrec.bench.child import Reporter
from freshrec.bench.ingest import DAY, bench_catalog
from freshrec.bench.processes import stop_process
from freshrec.bench.serving import free_port
from freshrec.bench.workload import Clickstream

ENV = {"FRESHREC_CLOCK": "event", "FRESHREC_EMBEDDINGS__MODEL": "none", "FRESHREC_CF__ENABLED": "false"}


def _kafka_env(bootstrap: str) -> dict[str, str]:
    return {
        "FRESHREC_KAFKA__BOOTSTRAP": bootstrap,
        "FRESHREC_KAFKA__PARTITIONS": "4",
        "FRESHREC_KAFKA__SESSION_TIMEOUT_MS": "6000",
    }


def _wait(
    condition: Callable[[], bool], timeout: float, what: str, procs: list[subprocess.Popen[bytes]], logs: Path
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: {proc.args!r} exited with {proc.returncode} (logs in {logs})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f} s (logs in {logs})")
        time.sleep(0.1)


def distributed_job(reporter: Reporter, users: int, items: int, per_user: int, probes: int) -> dict[str, Any]:
    from freshrec.bench.kafka_broker import KafkaBroker
    from freshrec.bench.redis_server import RedisServer
    from freshrec.config import load_settings
    from freshrec.distributed.setup import open_engine

    products = [{k: v for k, v in it.items() if k != "embedding"} for it in bench_catalog(items)]
    stream = Clickstream(products, users)
    warm = [e for chunk in stream.warm(per_user, DAY) for e in chunk]
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="freshrec-bench-dist-"))
    with RedisServer() as redis_server, KafkaBroker() as broker:
        state = f"{redis_server.url}?prefix=bench"
        env = {**os.environ, **ENV, **_kafka_env(broker.bootstrap)}
        exe = str(Path(sys.executable).with_name("freshrec"))
        port = free_port()

        def start(name: str, args: list[str]) -> None:
            with (logs / f"{name}.log").open("wb") as log:
                procs.append(subprocess.Popen([exe, *args], stdout=log, stderr=subprocess.STDOUT, env=env))

        try:
            start("replica", ["serve", "--state", state, "--kafka", broker.bootstrap, "--port", str(port)])
            start("worker", ["worker", "--state", state, "--kafka", broker.bootstrap])
            base = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait(healthy, 120, "the replica starts", procs, logs)
            reader, _ = open_engine(load_settings(clock="event", state=state, embeddings={"model": "none"}))
            with httpx.Client(base_url=base, timeout=60) as client:
                for lo in range(0, len(products), 2000):
                    client.post("/v1/items", json=products[lo : lo + 2000]).raise_for_status()
                for lo in range(0, len(warm), 2000):
                    client.post("/v1/events", json=warm[lo : lo + 2000]).raise_for_status()
                    reporter.step("distributed: warm-up events posted", lo + 2000, len(warm))

            def applied() -> bool:
                done = reader.total_applied()[0]
                reporter.step("distributed: applied by the worker", done, len(warm))
                return done >= len(warm)

            _wait(applied, 1800, "the worker applies the warm-up", procs, logs)
            who = sorted({e["user_id"] for e in warm})
            reporter.step("distributed: freshness probes", 0, 1)
            result = loadgen.freshness(port, who, stream.start + DAY + 1, probes, gap_s=0.5, poll_s=0.002)
            reporter.step("distributed: freshness probes", 1, 1)
        finally:
            for proc in procs:
                stop_process(proc, signal.SIGTERM, 30)
    shutil.rmtree(logs, ignore_errors=True)  # kept when something failed: the error names them
    result.update(users=users, items=items, warm_events=len(warm))
    return result
