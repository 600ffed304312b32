"""What logging exposures costs an embedded server: recommendations with ``?experiment=`` against without.

    python bench/experiments_fsync.py [SECONDS] [CONCURRENCY] [--no-fsync] [--workers N] [--strategy S]

Starts ``freshrec serve`` on a fresh data directory (fsync on unless ``--no-fsync``), loads 500 items and
20,000 events of 2,000 users, declares a 50/50 experiment, then for SECONDS each (default 10) has
CONCURRENCY clients (default 16) ask for recommendations of random users: first without an experiment, then
with ``?experiment=`` (every answer an exposure written to the log before it leaves), the same strategy in
both phases. Prints answers/s and
the p50/p99 latency of both phases, and the exposures the server logged.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from freshrec.bench.processes import stop_process

USERS = 2_000
#: both variants and the phase without an experiment answer with this strategy: the difference between the
#: phases is the exposure's logging alone
STRATEGY = sys.argv[sys.argv.index("--strategy") + 1] if "--strategy" in sys.argv else "personalized"
ITEMS = 500
EXPERIMENT = {
    "variants": [
        {"name": "control", "weight": 50, "strategy": STRATEGY},
        {"name": "fresh", "weight": 50, "strategy": STRATEGY},
    ],
    "metric_window_seconds": 1800,
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(client: httpx.Client) -> None:
    rng = random.Random(7)
    items = [{"item_id": f"sku-{i}", "category": f"c{i % 12}", "price": 5.0 + i % 50} for i in range(ITEMS)]
    for lo in range(0, ITEMS, 250):
        assert client.post("/v1/items", json=items[lo : lo + 250]).status_code in (200, 202)
    now = time.time()
    events = [
        {
            "user_id": f"user-{rng.randrange(USERS)}",
            "item_id": f"sku-{rng.randrange(ITEMS)}",
            "type": rng.choice(("view", "view", "view", "click", "add_to_cart")),
            "timestamp": now - rng.uniform(0, 3600),
        }
        for _ in range(20_000)
    ]
    for lo in range(0, len(events), 1000):
        assert client.post("/v1/events", json=events[lo : lo + 1000]).status_code == 202
    assert client.put("/v1/experiments/bench", json=EXPERIMENT).status_code == 200


async def phase(base: str, seconds: float, concurrency: int, experiment: bool) -> tuple[int, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    params = {"k": "10", **({"experiment": "bench"} if experiment else {"strategy": STRATEGY})}

    async def client_loop(n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.perf_counter() < stop:
                user = f"user-{rng.randrange(USERS)}"
                started = time.perf_counter()
                response = await client.get(f"/v1/users/{user}/recommendations", params=params)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(n) for n in range(concurrency)))
    return round(len(latencies) / (time.perf_counter() - started)), latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    args = [a for a in sys.argv[1:] if a.isdigit() or a.replace(".", "", 1).isdigit()]
    seconds = float(args[0]) if args else 10.0
    concurrency = int(args[1]) if len(args) > 1 else 16
    workers = sys.argv[sys.argv.index("--workers") + 1] if "--workers" in sys.argv else "1"
    fsync = "--no-fsync" not in sys.argv
    data = Path(tempfile.mkdtemp(prefix="freshrec-bench-exp-"))
    port = free_port()
    command = [sys.executable, "-m", "freshrec.cli", "serve", "--data-dir", str(data), "--port", str(port)]
    command += ["--workers", workers, *([] if fsync else ["--no-fsync"])]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            load(client)
            print(
                f"fsync={'on' if fsync else 'off'} workers={workers} concurrency={concurrency} "
                f"strategy={STRATEGY}",
                flush=True,
            )
            for experiment in (False, True):
                rate, latencies = asyncio.run(phase(base, seconds, concurrency, experiment))
                label = "?experiment=" if experiment else "no experiment"
                print(
                    f"{label:>14}: {rate:,} answers/s, p50 {quantile(latencies, 0.5):.2f} ms, "
                    f"p99 {quantile(latencies, 0.99):.2f} ms ({len(latencies):,} answers)",
                    flush=True,
                )
            results = client.get("/v1/experiments/bench/results").json()
            logged = sum(v["exposures"] for v in results["variants"])
            print(f"exposures logged: {logged:,}", flush=True)
    finally:
        stop_process(server, signal.SIGTERM, 15.0)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
