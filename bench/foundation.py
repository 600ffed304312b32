"""Foundation benchmark: ingestion events/s on one core, recommendation latency over loopback, state size.

    python bench/foundation.py --users 10000 --items 10000 --max-events 1000000 --json out.json

Workload: the demo's generated shop (planted preferences, funnels, bursts, drifting sessions). Steps:

1. in this process (one core): validation alone, then applying pre-validated events to every view (no
   journal), then applying through the durable log with fsync per 1,000-event batch;
2. state size: resident memory grown by applying the events, and the snapshot size, per user;
3. a real server (``freshrec serve --ephemeral --clock event``) in its own process, loaded over HTTP
   (events/s through HTTP), then a load generator in a third process sends sequential keep-alive requests
   (raw sockets, so the client costs microseconds) for each strategy and for ``/health`` as the baseline of
   an empty endpoint of the same server: p50 / p99 / max.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from freshrec.config import load_settings
from freshrec.demo.scenario import generate_scenario
from freshrec.engine import Engine
from freshrec.events import validate_events
from freshrec.storage.datadir import DataDir

STRATEGIES = ("hybrid", "personalized", "session", "trending_for_you", "trending")
BATCH = 1000


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(items: list[dict[str, Any]], events: list[dict[str, Any]], users: int) -> dict[str, Any]:
    settings = load_settings(clock="event")
    started = time.perf_counter()
    validated = []
    for start in range(0, len(events), BATCH):
        validated.extend(
            validate_events(events[start : start + BATCH], settings.events, received_at=time.time())
        )
    validate_s = time.perf_counter() - started

    engine = Engine(settings)
    engine.upsert_items(items)
    base_rss = rss_bytes()
    started = time.perf_counter()
    for start in range(0, len(validated), BATCH):
        engine.ingest_events(validated[start : start + BATCH])
    apply_s = time.perf_counter() - started
    grown = rss_bytes() - base_rss
    snapshot = len(engine.snapshot())
    state_users = engine.store.stats()["users"]
    del engine

    with tempfile.TemporaryDirectory() as tmp:
        durable_settings = load_settings(clock="event")
        datadir = DataDir(Path(tmp), durable_settings)
        engine = datadir.open_engine()
        engine.upsert_items(items)
        started = time.perf_counter()
        for start in range(0, len(validated), BATCH):
            engine.ingest_events(validated[start : start + BATCH])
        durable_s = time.perf_counter() - started
        log_bytes = datadir.log.size_bytes()
        datadir.close(snapshot=False)
    n = len(events)
    return {
        "events": n,
        "users_with_state": state_users,
        "validate_events_per_s": n / validate_s,
        "ingest_events_per_s_per_core": n / apply_s,
        "ingest_durable_fsync_events_per_s": n / durable_s,
        "validate_plus_apply_events_per_s": n / (validate_s + apply_s),
        "state_rss_bytes_per_user": grown / max(1, state_users),
        "snapshot_bytes_per_user": snapshot / max(1, state_users),
        "log_bytes_per_event": log_bytes / n,
        "users_requested": users,
    }


def _http_get(sock: socket.socket, path: str) -> tuple[int, bytes]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return status, body


def load_generator(port: int, users: list[str], requests: int, queue: Any) -> None:
    """Runs in its own process: sequential keep-alive requests, latencies in ms per endpoint."""
    rng = random.Random(1)
    out: dict[str, dict[str, float]] = {}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for name in ("health", *STRATEGIES):
            latencies = []
            errors = 0
            for n in range(requests + 50):
                user = rng.choice(users)
                path = (
                    "/health"
                    if name == "health"
                    else f"/v1/users/{user}/recommendations?k=20&strategy={name}"
                )
                started = time.perf_counter()
                status, _ = _http_get(sock, path)
                elapsed = (time.perf_counter() - started) * 1000
                if n >= 50:  # warm-up
                    latencies.append(elapsed)
                    errors += status != 200
            out[name] = {
                "p50_ms": statistics.median(latencies),
                "p99_ms": pct(latencies, 0.99),
                "max_ms": max(latencies),
                "errors": errors,
                "requests": len(latencies),
            }
    queue.put(out)


def over_http(items: list[dict[str, Any]], events: list[dict[str, Any]], requests: int) -> dict[str, Any]:
    port = free_port()
    exe = Path(sys.executable).with_name("freshrec")
    server = subprocess.Popen(
        [str(exe), "serve", "--ephemeral", "--clock", "event", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=120) as client:
            for start in range(0, len(items), 5000):
                client.post("/v1/items", json=items[start : start + 5000]).raise_for_status()
            started = time.perf_counter()
            for start in range(0, len(events), 5000):
                body = orjson.dumps(events[start : start + 5000])
                client.post(
                    "/v1/events", content=body, headers={"content-type": "application/json"}
                ).raise_for_status()
            http_ingest = len(events) / (time.perf_counter() - started)
        users = sorted({e["user_id"] for e in events})
        queue: Any = mp.get_context("spawn").Queue()
        proc = mp.get_context("spawn").Process(target=load_generator, args=(port, users, requests, queue))
        proc.start()
        latencies = queue.get(timeout=1800)
        proc.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    health_p50 = latencies["health"]["p50_ms"]
    return {
        "http_ingest_events_per_s": http_ingest,
        "latency": latencies,
        "recs_p50_over_health_p50": {s: latencies[s]["p50_ms"] / health_p50 for s in STRATEGIES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24.0, help="Span of the generated clickstream.")
    parser.add_argument("--max-events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000, help="Requests per strategy.")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--http-only", action="store_true", help="Skip the in-process measurements.")
    args = parser.parse_args()

    started = time.perf_counter()
    scenario = generate_scenario(
        n_users=args.users, n_items=args.items, seed=1, duration_seconds=args.hours * 3600
    )
    events = scenario.events[: args.max_events]
    print(
        f"workload: {len(scenario.items):,} items, {len(events):,} events "
        f"({time.perf_counter() - started:.0f} s to generate)",
        file=sys.stderr,
    )
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "items": len(scenario.items),
    }
    if not args.http_only:
        result["in_process"] = in_process(scenario.items, events, args.users)
        print(json.dumps(result["in_process"], indent=2), file=sys.stderr)
    result["http"] = over_http(scenario.items, events, args.requests)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
