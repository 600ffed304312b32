"""Distributed-mode benchmark: worker ingestion into Redis, produce → visible freshness, API latency on Redis.

    python bench/distributed.py --json out.json      # 2,000 users × 2,000 items, the first 20,000 events

The script starts its own Valkey server and Tansu broker (the launchers of the integration tests) and every
``freshrec`` process it needs, and stops all of them by PID when it ends, also on Ctrl-C or an error.
Workload: the demo's generated shop (as bench/foundation.py); settings ``clock = "event"``,
``embeddings.model = "none"``, ``cf.enabled = false`` everywhere. Steps:

1. events/s per worker into Redis:
   a. in this process: the same validated events applied by ``Engine`` on ``memory://`` and on Redis (one
      MULTI/EXEC per batch of 1,000), events/s of each and the ratio;
   b. end to end: the catalog goes through the items topic (applied by a worker that is then stopped), every
      event is produced to the events topic, then ONE ``freshrec worker`` is started and timed until it has
      applied every unique event. The start-up and consumer-group join (time to the first applied event)
      is reported apart from the steady rate. ``--two-workers`` repeats it on fresh topics with two workers.
2. freshness: one ``freshrec serve --state ... --kafka ...`` replica and one worker on the loaded state; one
   event at a time is POSTed (a new item for an existing user) and the replica's
   ``/v1/views/user_history`` is polled until the event is there: POST → visible p50/p99/max, and the POST
   alone (its 202 waits for the broker's ack). Probes are spaced by random pauses of up to ``--gap-ms``
   (default 0.5 s, the worker's poll timeout), so they arrive at random phases of the worker's loop.
3. API latency reading Redis: a load generator in its own process (bench/foundation.py's raw-socket client)
   sends sequential keep-alive requests to the replica, then the same requests to an embedded
   ``freshrec serve --ephemeral`` loaded with the same events over HTTP: p50/p99/max, distributed/embedded.
   Each endpoint gets ``--requests`` requests or ``--endpoint-budget`` seconds, whichever ends first (the
   table says how many were made).
4. Redis memory: ``used_memory`` (INFO memory) before and after the ingestion of 1b, per user with history
   and per event.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from types import FrameType
from typing import Any

# The Valkey and Tansu launchers live in the test suite's support package (tests/support), which is not
# installed with freshrec, so the repository's tests directory goes on sys.path; so does this directory, for
# bench/foundation.py (its raw-socket HTTP client). Explicitly, so that it works from any working directory
# and in the spawned load-generator processes, which import this file again.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import orjson
import redis
from confluent_kafka import Producer
from confluent_kafka import libversion as kafka_libversion
from foundation import _http_get, free_port, pct
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from freshrec.catalog import validate_items
from freshrec.config import Settings, load_settings
from freshrec.demo.scenario import generate_scenario
from freshrec.distributed.catalog import StoreCatalog
from freshrec.distributed.kafka import ensure_topics, producer_config
from freshrec.distributed.setup import open_engine
from freshrec.engine import Engine, items_record
from freshrec.events import Event, validate_events
from freshrec.state.base import open_state
from support.kafka_broker import KafkaBroker
from support.redis_server import RedisServer

STRATEGIES = ("personalized", "session", "trending", "hybrid")
ENDPOINTS = ("health", *STRATEGIES)
#: the settings of every freshrec process started here (the in-process engines get the same)
ENV = {"FRESHREC_CLOCK": "event", "FRESHREC_EMBEDDINGS__MODEL": "none", "FRESHREC_CF__ENABLED": "false"}
WARMUP = 20  # requests per endpoint before the measured ones ...
WARMUP_S = 5.0  # ... or this many seconds of them
FRESH_WARMUP = 5  # freshness probes before the measured ones

console = Console(stderr=True)


# -- settings and deployments ----------------------------------------------------------------------------
def bench_settings(state: str = "memory://", kafka: dict[str, Any] | None = None) -> Settings:
    overrides: dict[str, Any] = {
        "clock": "event",
        "embeddings": {"model": "none"},
        "cf": {"enabled": False},
        "state": state,
    }
    if kafka is not None:
        overrides["kafka"] = kafka
    return load_settings(**overrides)


@dataclass(frozen=True)
class Deployment:
    """One distributed deployment: its own topics, consumer group and key prefix in the shared Valkey."""

    name: str
    redis_url: str
    bootstrap: str
    partitions: int
    batch_size: int
    session_timeout_ms: int

    @property
    def state(self) -> str:
        return f"{self.redis_url}?prefix=bench-{self.name}"

    @property
    def events_topic(self) -> str:
        return f"bench-{self.name}.events"

    def kafka(self) -> dict[str, Any]:
        return {
            "bootstrap": self.bootstrap,
            "events_topic": self.events_topic,
            "items_topic": f"bench-{self.name}.items",
            "dead_letter_topic": f"bench-{self.name}.dead-letter",
            "group": f"bench-{self.name}",
            "partitions": self.partitions,
            "batch_size": self.batch_size,
            "session_timeout_ms": self.session_timeout_ms,
        }

    def settings(self) -> Settings:
        return bench_settings(self.state, self.kafka())

    def env(self) -> dict[str, str]:
        return {**ENV, **{f"FRESHREC_KAFKA__{k.upper()}": str(v) for k, v in self.kafka().items()}}

    def worker_args(self) -> list[str]:
        return ["worker", "--state", self.state, "--kafka", self.bootstrap]


# -- processes --------------------------------------------------------------------------------------------
class Processes:
    """``freshrec`` commands in their own processes, each printing to a log file; a context manager that
    stops every one still running when it ends (SIGTERM by PID, SIGKILL after a timeout)."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        fd, log_name = tempfile.mkstemp(prefix="freshrec-bench-", suffix=".log")
        log = Path(log_name)
        with os.fdopen(fd, "wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "freshrec.cli", *args],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.running.append((name, proc, log))
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        for _, known, log in self.running:
            if known is proc and log.exists():
                return log.read_text(errors="replace")
        return ""

    def check(self) -> None:
        """Raise when a process started here has exited by itself (with the end of what it printed)."""
        for name, proc, log in self.running:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with {proc.returncode}:\n{tail}")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        for entry in list(self.running):
            if entry[1] is proc:
                self.running.remove(entry)
                _terminate(proc, timeout)
                entry[2].unlink(missing_ok=True)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for _, proc, _log in reversed(self.running):  # SIGTERM all first: they stop in parallel
            if proc.poll() is None:
                _signal(proc, signal.SIGTERM)
        for _, proc, log in reversed(self.running):
            _terminate(proc, 15.0)
            log.unlink(missing_ok=True)
        self.running.clear()


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(proc.pid, sig)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL)
        proc.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {what} ..."):
        while not condition():
            procs.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.05)


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# -- progress ---------------------------------------------------------------------------------------------
COLUMNS = (
    TextColumn("{task.description:<34}"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("{task.fields[speed]}"),
    TimeRemainingColumn(),
)


@contextmanager
def progress(description: str, total: int, unit: str = "events") -> Iterator[Callable[[int], None]]:
    """A progress bar; the callable sets how many are done (and shows the rate)."""
    with Progress(*COLUMNS, console=console) as bars:
        task = bars.add_task(description, total=total, speed="")
        started = time.perf_counter()

        def update(done: int) -> None:
            rate = done / max(1e-9, time.perf_counter() - started)
            bars.update(task, completed=done, speed=f"{rate:,.0f} {unit}/s")

        yield update


def batches(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- 1a: in this process ----------------------------------------------------------------------------------
def in_process(
    items: list[dict[str, Any]], events: list[dict[str, Any]], redis_url: str, batch: int
) -> dict[str, Any]:
    settings = bench_settings()
    validated: list[Event] = []
    started = time.perf_counter()
    with progress("1a validating", len(events)) as update:
        for chunk in batches(events, batch):
            validated.extend(validate_events(list(chunk), settings.events, received_at=time.time()))
            update(len(validated))
    validate_s = time.perf_counter() - started

    def timed(engine: Engine, label: str) -> float:
        engine.upsert_items(items)
        done = 0
        with progress(label, len(validated)) as update:
            started = time.perf_counter()
            for chunk in batches(validated, batch):
                engine.ingest_events(chunk)
                done += len(chunk)
                update(done)
            return time.perf_counter() - started

    memory_s = timed(Engine(settings), "1a apply on memory://")
    store = open_state(f"{redis_url}?prefix=bench-inprocess")
    engine = Engine(settings, store, StoreCatalog(store))
    redis_s = timed(engine, "1a apply on Redis")
    applied = engine.total_applied()[0]
    n = len(validated)
    return {
        "inprocess_events": n,
        "inprocess_redis_applied_events": applied,
        "validate_events_per_s": n / validate_s,
        "inprocess_memory_events_per_s": n / memory_s,
        "inprocess_redis_events_per_s": n / redis_s,
        "inprocess_memory_over_redis_ratio": redis_s / memory_s,
    }


# -- 1b: end to end through Kafka -------------------------------------------------------------------------
def used_memory(client: redis.Redis) -> int:
    """``used_memory`` once nothing is left to free in the background (Valkey frees lazily by default)."""
    deadline = time.monotonic() + 30
    while True:
        info: dict[str, Any] = client.info("memory")
        if not info.get("lazyfree_pending_objects") or time.monotonic() > deadline:
            return int(info["used_memory"])
        time.sleep(0.05)


def produce(
    bootstrap_settings: Settings, topic: str, records: Sequence[tuple[str, dict[str, Any]]], label: str
) -> None:
    """Publish ``(key, record)`` pairs and wait for the broker's ack of every one."""
    producer = Producer(producer_config(bootstrap_settings.kafka))
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    with progress(label, len(records), "records") as update:
        for n, (key, record) in enumerate(records, 1):
            while True:
                try:
                    producer.produce(topic, orjson.dumps(record), key.encode(), on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            if n % 1000 == 0 or n == len(records):
                producer.poll(0)
                update(n)
        left = producer.flush(60)
    if left or failures:
        raise RuntimeError(f"{left} records unacknowledged, {len(failures)} refused: {failures[:3]}")


def load_catalog(dep: Deployment, items: list[dict[str, Any]], reader: Engine, procs: Processes) -> float:
    """The catalog through the items topic, applied by a worker that is stopped once it is done."""
    started = time.perf_counter()
    loader = procs.start(f"catalog worker ({dep.name})", dep.worker_args(), dep.env())
    stamp = time.time()
    records = [(i.item_id, items_record([i], stamp)) for i in validate_items(items)]
    produce(dep.settings(), dep.kafka()["items_topic"], records, f"1b catalog → {dep.name} items")

    def loaded() -> bool:
        reader.sync_catalog()
        return len(reader.catalog) == len(items)

    wait_for(loaded, 300, f"{len(items):,} items applied by the catalog worker", procs)
    elapsed = time.perf_counter() - started
    procs.stop(loader)
    return elapsed


def end_to_end(
    dep: Deployment,
    workers: int,
    items: list[dict[str, Any]],
    events: list[dict[str, Any]],
    unique: int,
    procs: Processes,
    client: redis.Redis,
) -> dict[str, Any]:
    settings = dep.settings()
    ensure_topics(settings.kafka)
    reader, _ = open_engine(settings)
    memory_before = used_memory(client)
    catalog_s = load_catalog(dep, items, reader, procs)
    memory_catalog = used_memory(client)
    produce(settings, dep.events_topic, [(e["user_id"], e) for e in events], f"1b events → {dep.name}")

    started = time.perf_counter()
    running = [
        procs.start(f"worker {n + 1} ({dep.name})", dep.worker_args(), dep.env()) for n in range(workers)
    ]
    first_at: float | None = None
    first_count = 0
    assigned_at: float | None = None
    waiting = list(running)  # workers not yet assigned partitions of the events topic (from their log)
    label = f"1b {workers} worker{'s' if workers > 1 else ''} applying"
    deadline = time.monotonic() + 1800
    with progress(label, unique) as update:
        while True:
            applied = reader.total_applied()[0]
            now = time.perf_counter()
            if applied and first_at is None:
                first_at, first_count = now, applied
            if waiting:
                waiting = [w for w in waiting if f"{dep.events_topic}[" not in procs.output(w)]
                if not waiting:
                    assigned_at = now
            update(applied)
            if applied >= unique:
                break
            procs.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {applied:,} of {unique:,} events applied after 30 min")
            time.sleep(0.02)
    done_at = time.perf_counter()
    assert first_at is not None
    time.sleep(0.5)  # anything applied twice would show now
    final = reader.total_applied()[0]
    memory_after = used_memory(client)
    users = int(reader.store.stats()["users"])
    for proc in running:
        procs.stop(proc)
    steady = (unique - first_count) / max(1e-9, done_at - first_at)
    return {
        "workers": len(running),
        "catalog_load_s": catalog_s,
        "worker_start_to_assigned_s": None if assigned_at is None else assigned_at - started,
        "worker_start_to_first_applied_s": first_at - started,
        "worker_first_applied_events": first_count,
        "worker_total_s": done_at - started,
        "worker_events_per_s": steady,
        "worker_events_per_s_incl_startup": unique / (done_at - started),
        "applied_events": final,
        "users_with_history": users,
        "redis_used_memory_before_bytes": memory_before,
        "redis_used_memory_after_catalog_bytes": memory_catalog,
        "redis_used_memory_after_events_bytes": memory_after,
    }


# -- load generators (in their own processes) -------------------------------------------------------------
def _response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length (what freshrec's server sends)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def _http_post(sock: socket.socket, path: str, body: bytes) -> tuple[int, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return _response(sock)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _client(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], queue: Any) -> None:
    """The body of a load-generator process: report its result (or its error) through ``queue``."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it at once; the parent cleans up

    def report(done: int) -> None:
        queue.put(("progress", done))

    try:
        queue.put(("result", target(*args, report)))
    except Exception:
        queue.put(("error", traceback.format_exc()))


def freshness_probe(
    port: int,
    plan: list[tuple[str, str, bytes]],
    poll_s: float,
    gap_s: float,
    timeout_s: float,
    report: Callable[[int], None],
) -> dict[str, Any]:
    """POST each event, then poll the user's history on the replica until its event_id is there."""
    rng = random.Random(2)
    fresh: list[float] = []
    posts: list[float] = []
    polls = 0
    missing = 0
    with _connect(port) as sock:
        for n, (user, event_id, body) in enumerate(plan):
            needle = f'"{event_id}"'.encode()
            path = f"/v1/views/user_history?user_id={user}&limit=5"  # newest first
            started = time.perf_counter()
            status, reply = _http_post(sock, "/v1/events", body)
            acked = time.perf_counter()
            if status != 202:
                raise RuntimeError(f"POST /v1/events answered {status}: {reply[:300]!r}")
            while True:
                _, rows = _http_get(sock, path)
                seen_at = time.perf_counter()
                polls += 1
                if needle in rows:
                    break
                if seen_at - acked > timeout_s:
                    missing += 1
                    break
                time.sleep(poll_s)
            if n >= FRESH_WARMUP:
                posts.append((acked - started) * 1000)
                if needle in rows:
                    fresh.append((seen_at - started) * 1000)
            report(n + 1)
            time.sleep(rng.uniform(0.0, gap_s))  # arrivals at random phases of the worker's poll loop
    return {"fresh_ms": fresh, "post_ms": posts, "missing": missing, "polls": polls}


def latency_probe(
    port: int, users: list[str], requests: int, budget_s: float, report: Callable[[int], None]
) -> dict[str, Any]:
    """Sequential keep-alive GETs per endpoint: latencies in ms (after a warm-up), errors, degraded.

    An endpoint gets ``requests`` requests, or fewer when they take more than ``budget_s`` seconds (the
    warm-up: ``WARMUP`` requests or ``WARMUP_S`` seconds, whichever ends first)."""
    rng = random.Random(1)
    out: dict[str, Any] = {}
    done = 0
    with _connect(port) as sock:
        for index, name in enumerate(ENDPOINTS):
            latencies: list[float] = []
            errors = degraded = 0
            phase_started = time.perf_counter()
            warming = True
            sent = 0
            while len(latencies) < requests:
                now = time.perf_counter()
                if warming and (sent >= WARMUP or now - phase_started > WARMUP_S):
                    warming, phase_started = False, now
                elif not warming and latencies and now - phase_started > budget_s:
                    break
                user = rng.choice(users)
                path = (
                    "/health"
                    if name == "health"
                    else f"/v1/users/{user}/recommendations?k=20&strategy={name}"
                )
                started = time.perf_counter()
                status, body = _http_get(sock, path)
                elapsed = (time.perf_counter() - started) * 1000
                sent += 1
                if not warming:
                    latencies.append(elapsed)
                    errors += status != 200
                    degraded += b'"degraded"' in body and name != "health"
                done += 1
                if done % 20 == 0:
                    report(done)
            done = (index + 1) * (requests + WARMUP)
            report(done)
            out[name] = {
                "p50_ms": statistics.median(latencies),
                "p99_ms": pct(latencies, 0.99),
                "max_ms": max(latencies),
                "errors": errors,
                "degraded": degraded,
                "requests": len(latencies),
            }
    report(done)
    return out


def in_child(
    target: Callable[..., dict[str, Any]], args: tuple[Any, ...], label: str, total: int, unit: str
) -> Any:
    """Run a probe in a spawned process (its own interpreter and GIL), showing its progress here."""
    context = mp.get_context("spawn")
    queue: Any = context.Queue()
    proc = context.Process(target=_client, args=(target, args, queue), daemon=True)
    proc.start()
    try:
        with progress(label, total, unit) as update:
            while True:
                try:
                    kind, payload = queue.get(timeout=1.0)
                except Empty:
                    if not proc.is_alive():
                        raise RuntimeError(f"{label}: the client exited with {proc.exitcode}") from None
                    continue
                if kind == "progress":
                    update(payload)
                elif kind == "error":
                    raise RuntimeError(f"{label} failed:\n{payload}")
                else:
                    return payload
    except BaseException:  # Ctrl-C, SIGTERM, an error: the client stops now
        proc.terminate()
        raise
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- 2 and 3 ----------------------------------------------------------------------------------------------
def freshness_plan(
    events: list[dict[str, Any]], items: list[dict[str, Any]], n: int
) -> tuple[list[dict[str, Any]], list[tuple[str, str, bytes]]]:
    """``n`` (plus warm-up) view events, each a new item for an existing user, newer than anything loaded."""
    rng = random.Random(3)
    touched: dict[str, set[str]] = {}
    for e in events:
        touched.setdefault(e["user_id"], set()).add(e["item_id"])
    users = sorted(touched)
    catalog = [i["item_id"] for i in items]
    last = max(float(e["timestamp"]) for e in events)
    fresh: list[dict[str, Any]] = []
    for k in range(n + FRESH_WARMUP):
        user = rng.choice(users)
        item = rng.choice(catalog)
        while item in touched[user]:
            item = rng.choice(catalog)
        touched[user].add(item)
        fresh.append(
            {
                "event_id": f"bench-fresh-{k:06d}",
                "user_id": user,
                "item_id": item,
                "type": "view",
                "timestamp": round(last + (k + 1) * 0.001, 3),
            }
        )
    return fresh, [(e["user_id"], e["event_id"], orjson.dumps(e)) for e in fresh]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"p50": statistics.median(values), "p99": pct(values, 0.99), "max": max(values)}


def sample_answers(port: int, users: list[str]) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for user in users:
            for strategy in STRATEGIES:
                body = client.get(f"/v1/users/{user}/recommendations", params={"k": 20, "strategy": strategy})
                body.raise_for_status()
                answers[f"{user} {strategy}"] = [i["item_id"] for i in body.json()["items"]]
    return answers


def load_embedded(port: int, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> float:
    """Items, then events over HTTP (5,000 a request); returns events/s."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
        for chunk in batches(items, 5000):
            client.post("/v1/items", json=list(chunk)).raise_for_status()
        started = time.perf_counter()
        done = 0
        with progress("3 embedded: events over HTTP", len(events)) as update:
            for chunk in batches(events, 5000):
                response = client.post(
                    "/v1/events",
                    content=orjson.dumps(list(chunk)),
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()
                done += len(chunk)
                update(done)
        return len(events) / (time.perf_counter() - started)


# -- versions and the report ------------------------------------------------------------------------------
def versions(server: RedisServer, broker: KafkaBroker) -> dict[str, Any]:
    def dist(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    valkey = subprocess.run([str(server.binary), "--version"], capture_output=True, text=True, check=False)
    token = next((t for t in valkey.stdout.split() if t.startswith("v=")), "v=?")
    tansu = subprocess.run([str(broker.binary), "--version"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "freshrec": dist("freshrec"),
        "valkey_server": token[2:],
        "tansu": tansu.stdout.strip().removeprefix("tansu ") or None,
        "redis_py": redis.__version__,
        "confluent_kafka": dist("confluent-kafka"),
        "librdkafka": kafka_libversion()[0],
        "cpus": os.cpu_count(),
    }


def report_tables(r: dict[str, Any]) -> None:
    out = Console(width=None if sys.stdout.isatty() else 140)
    head = Table(title="freshrec distributed mode", title_justify="left", show_header=True)
    head.add_column("measure")
    head.add_column("value", justify="right")
    head.add_column("notes")

    def row(name: str, value: str, notes: str = "") -> None:
        head.add_row(name, value, notes)

    row(
        "workload",
        f"{r['events']:,} events",
        f"{r['users_with_history']:,} users with history, {r['items']:,} items, "
        f"batches of {r['batch_size']:,}",
    )
    row("1a validate (in process)", f"{r['validate_events_per_s']:,.0f} ev/s")
    row("1a apply on memory:// (in process)", f"{r['inprocess_memory_events_per_s']:,.0f} ev/s")
    row(
        "1a apply on Redis (in process)",
        f"{r['inprocess_redis_events_per_s']:,.0f} ev/s",
        f"memory:// is {r['inprocess_memory_over_redis_ratio']:.1f}x faster",
    )
    row("1b catalog through the items topic", f"{r['catalog_load_s']:.1f} s", f"{r['items']:,} items")
    row(
        "1b one worker, steady",
        f"{r['worker_events_per_s']:,.0f} ev/s",
        f"after the first batch; {r['worker_total_s']:.1f} s in all",
    )
    row(
        "1b one worker, start → first applied",
        f"{r['worker_start_to_first_applied_s']:.2f} s",
        "process start, group join, first batch",
    )
    if r["worker_start_to_assigned_s"] is not None:
        row(
            "1b one worker, start → partitions assigned",
            f"{r['worker_start_to_assigned_s']:.2f} s",
            "process start, catalog mirror, group join (from its log)",
        )
    row("1b one worker, incl. start-up", f"{r['worker_events_per_s_incl_startup']:,.0f} ev/s")
    if "workers2_events_per_s" in r:
        row(
            "1b two workers, steady (total)",
            f"{r['workers2_events_per_s']:,.0f} ev/s",
            f"{r['workers2_events_per_s_per_worker']:,.0f}/worker; speed-up {r['workers2_speedup']:.2f}x",
        )
        row("1b two workers, start → first applied", f"{r['workers2_start_to_first_applied_s']:.2f} s")
    row(
        "2 freshness POST → visible p50 / p99 / max",
        f"{r['fresh_p50_ms']:.1f} / {r['fresh_p99_ms']:.1f} / {r['fresh_max_ms']:.1f} ms",
        f"{r['fresh_events']} events, {r['fresh_missing']} not visible in {r['fresh_timeout_s']:g} s, "
        f"poll every {r['fresh_poll_ms']:g} ms",
    )
    row(
        "2 POST /v1/events (202 = broker ack) p50 / p99",
        f"{r['post_p50_ms']:.1f} / {r['post_p99_ms']:.1f} ms",
        f"max {r['post_max_ms']:.1f} ms",
    )
    row(
        "4 Redis bytes per user",
        f"{r['redis_bytes_per_user']:,.0f} B",
        f"used_memory grew {r['redis_events_bytes'] / 2**20:,.1f} MiB for the events",
    )
    row("4 Redis bytes per event", f"{r['redis_bytes_per_event']:,.0f} B")
    row("4 Redis bytes per catalog item", f"{r['redis_catalog_bytes_per_item']:,.0f} B")
    row(
        "3 embedded: events over HTTP", f"{r['embedded_http_ingest_events_per_s']:,.0f} ev/s", "for reference"
    )
    row(
        "3 same answers replica vs embedded",
        f"{r['answers_equal']}/{r['answers_compared']}",
        "top-20 item lists, 4 strategies",
    )
    out.print(head)

    lat = Table(
        title=f"3 API latency, ms: replica (Redis) vs embedded; up to {r['requests_per_endpoint']:,} "
        f"sequential keep-alive requests each (at most {r['endpoint_budget_s']:g} s), k=20",
        title_justify="left",
    )
    for name in (
        "endpoint",
        "replica p50",
        "p99",
        "max",
        "embedded p50",
        "p99",
        "max",
        "p50 ratio",
        "p99 ratio",
        "requests",
    ):
        lat.add_column(name, justify="left" if name == "endpoint" else "right")
    for name in ENDPOINTS:
        lat.add_row(
            name,
            f"{r[f'api_p50_ms_{name}']:.2f}",
            f"{r[f'api_p99_ms_{name}']:.2f}",
            f"{r[f'api_max_ms_{name}']:.2f}",
            f"{r[f'embedded_p50_ms_{name}']:.2f}",
            f"{r[f'embedded_p99_ms_{name}']:.2f}",
            f"{r[f'embedded_max_ms_{name}']:.2f}",
            f"{r[f'api_p50_ratio_{name}']:.2f}x",
            f"{r[f'api_p99_ratio_{name}']:.2f}x",
            f"{r[f'api_requests_{name}']:,} / {r[f'embedded_requests_{name}']:,}",
        )
    out.print(lat)
    v = r["versions"]
    out.print(
        f"python {v['python']}, freshrec {v['freshrec']}, valkey-server {v['valkey_server']}, "
        f"tansu {v['tansu']}, redis-py {v['redis_py']}, confluent-kafka {v['confluent_kafka']} "
        f"(librdkafka {v['librdkafka']}), {v['cpus']} CPUs; {r['elapsed_s']:.0f} s in all"
    )


# -- main -------------------------------------------------------------------------------------------------
def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: every process started here is stopped


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    with console.status("generating the workload ..."):
        scenario = generate_scenario(
            n_users=args.users, n_items=args.items, seed=args.seed, duration_seconds=args.hours * 3600
        )
    items = scenario.items
    events = scenario.events[: args.max_events]
    del scenario  # the rest of the generated stream is not used
    unique = len({e["event_id"] for e in events})
    console.print(
        f"workload: {len(items):,} items, {len(events):,} events ({unique:,} unique) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    r: dict[str, Any] = {
        "users_requested": args.users,
        "items": len(items),
        "events": len(events),
        "unique_events": unique,
        "hours_generated": args.hours,
        "batch_size": args.batch_size,
        "partitions": args.partitions,
        "session_timeout_ms": args.session_timeout_ms,
    }
    with ExitStack() as stack:
        with console.status("starting valkey-server and tansu ..."):
            server = stack.enter_context(RedisServer())
            broker = stack.enter_context(KafkaBroker())
        procs = stack.enter_context(Processes())
        r["versions"] = versions(server, broker)
        client = redis.Redis(host="127.0.0.1", port=server.port)

        def deployment(name: str) -> Deployment:
            return Deployment(
                name,
                server.url,
                broker.bootstrap,
                args.partitions,
                args.batch_size,
                args.session_timeout_ms,
            )

        # 1a, on database 1 (emptied afterwards, so that it does not weigh on the rest)
        inproc_url = f"redis://127.0.0.1:{server.port}/1"
        r.update(in_process(items, events, inproc_url, args.batch_size))
        redis.Redis(host="127.0.0.1", port=server.port, db=1).flushdb()  # freed lazily: see used_memory()

        # 1b and 4
        one = end_to_end(deployment("w1"), 1, items, events, unique, procs, client)
        r.update(one)
        if one["applied_events"] != unique:
            console.print(f"[red]applied {one['applied_events']:,} events, expected {unique:,}[/]")
        users = max(1, one["users_with_history"])
        grown = one["redis_used_memory_after_events_bytes"] - one["redis_used_memory_after_catalog_bytes"]
        r["redis_events_bytes"] = grown
        r["redis_bytes_per_user"] = grown / users
        r["redis_bytes_per_event"] = grown / max(1, unique)
        catalog_bytes = one["redis_used_memory_after_catalog_bytes"] - one["redis_used_memory_before_bytes"]
        r["redis_catalog_bytes_per_item"] = catalog_bytes / max(1, len(items))
        if args.two_workers:
            two = end_to_end(deployment("w2"), 2, items, events, unique, procs, client)
            r["workers2_events_per_s"] = two["worker_events_per_s"]
            r["workers2_events_per_s_per_worker"] = two["worker_events_per_s"] / 2
            r["workers2_speedup"] = two["worker_events_per_s"] / one["worker_events_per_s"]
            r["workers2_start_to_first_applied_s"] = two["worker_start_to_first_applied_s"]
            r["workers2_total_s"] = two["worker_total_s"]
            r["workers2_applied_events"] = two["applied_events"]

        # 2: a replica and a worker on the loaded state of 1b
        dep = deployment("w1")
        port = free_port()
        worker = procs.start("worker (w1)", dep.worker_args(), dep.env())
        replica = procs.start(
            "replica (w1)",
            ["serve", "--state", dep.state, "--kafka", broker.bootstrap, "--port", str(port)],
            dep.env(),
        )
        wait_for(lambda: healthy(port), 60, "the API replica", procs)
        wait_for(lambda: f"{dep.events_topic}[" in procs.output(worker), 60, "the worker's partitions", procs)
        fresh_events, plan = freshness_plan(events, items, args.fresh)
        probe = in_child(
            freshness_probe,
            (port, plan, args.poll_ms / 1000, args.gap_ms / 1000, args.fresh_timeout),
            "2 freshness POST → visible",
            len(plan),
            "probes",
        )
        fresh, posts = summary(probe["fresh_ms"]), summary(probe["post_ms"])
        r.update(
            {
                "fresh_events": len(probe["fresh_ms"]),
                "fresh_missing": probe["missing"],
                "fresh_polls": probe["polls"],
                "fresh_poll_ms": args.poll_ms,
                "fresh_gap_ms": args.gap_ms,
                "fresh_timeout_s": args.fresh_timeout,
                "fresh_p50_ms": fresh["p50"],
                "fresh_p99_ms": fresh["p99"],
                "fresh_max_ms": fresh["max"],
                "post_p50_ms": posts["p50"],
                "post_p99_ms": posts["p99"],
                "post_max_ms": posts["max"],
            }
        )

        # 3: the replica, then an embedded server with the same events
        users = sorted({e["user_id"] for e in events})
        total = len(ENDPOINTS) * (args.requests + WARMUP)
        probe_args = (port, users, args.requests, args.endpoint_budget)
        replica_lat = in_child(latency_probe, probe_args, "3 API on the replica", total, "req")
        sampled = random.Random(4).sample(users, min(20, len(users)))
        replica_answers = sample_answers(port, sampled)
        procs.stop(replica)
        procs.stop(worker)

        port = free_port()
        embedded = procs.start(
            "embedded server", ["serve", "--ephemeral", "--clock", "event", "--port", str(port)], ENV
        )
        wait_for(lambda: healthy(port), 60, "the embedded server", procs)
        r["embedded_http_ingest_events_per_s"] = load_embedded(port, items, [*events, *fresh_events])
        probe_args = (port, users, args.requests, args.endpoint_budget)
        embedded_lat = in_child(latency_probe, probe_args, "3 API embedded", total, "req")
        embedded_answers = sample_answers(port, sampled)
        procs.stop(embedded)
        r["answers_compared"] = len(replica_answers)
        r["answers_equal"] = sum(embedded_answers.get(k) == v for k, v in replica_answers.items())
        r["requests_per_endpoint"] = args.requests
        r["endpoint_budget_s"] = args.endpoint_budget
        for name in ENDPOINTS:
            d, e = replica_lat[name], embedded_lat[name]
            for stat in ("p50", "p99", "max"):
                r[f"api_{stat}_ms_{name}"] = d[f"{stat}_ms"]
                r[f"embedded_{stat}_ms_{name}"] = e[f"{stat}_ms"]
            r[f"api_p50_ratio_{name}"] = d["p50_ms"] / e["p50_ms"]
            r[f"api_p99_ratio_{name}"] = d["p99_ms"] / e["p99_ms"]
            r[f"api_requests_{name}"] = d["requests"]
            r[f"embedded_requests_{name}"] = e["requests"]
            r[f"api_errors_{name}"] = d["errors"]
            r[f"api_degraded_{name}"] = d["degraded"]
            r[f"embedded_errors_{name}"] = e["errors"]
    r["elapsed_s"] = time.perf_counter() - started
    return r


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=24.0, help="Span of the generated clickstream.")
    parser.add_argument("--max-events", type=int, default=20_000, help="The first N events are used.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="Events per in-process batch and per worker transaction."
    )
    parser.add_argument("--partitions", type=int, default=8, help="Partitions of each topic.")
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=6000,
        help="Consumer-group session (Tansu answers a join after about half of it).",
    )
    parser.add_argument("--two-workers", action="store_true", help="Also time two workers (step 1b).")
    parser.add_argument("--fresh", type=int, default=200, help="Freshness probes (step 2).")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="Pause between freshness polls.")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=500.0,
        help="Random pause (0..this) between freshness probes: at least the worker's poll timeout (0.5 s), "
        "so that probes arrive at random phases of its loop.",
    )
    parser.add_argument(
        "--fresh-timeout", type=float, default=30.0, help="Seconds before a probe is missing."
    )
    parser.add_argument("--requests", type=int, default=1000, help="Requests per endpoint (step 3).")
    parser.add_argument(
        "--endpoint-budget",
        type=float,
        default=45.0,
        help="Seconds per endpoint and server at most (step 3); fewer requests are made when slower.",
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the results here.")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        result = run(args)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: every process started here was stopped")
        sys.exit(130)
    report_tables(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
        console.print(f"[green]wrote[/] {args.json}")


if __name__ == "__main__":
    main()
