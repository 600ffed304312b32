"""Each strategy's cost inside the engine (no HTTP): microseconds per answer, median and p99.

    python bench/strategies.py USERS ITEMS [--cf] [--repeat N] [--keep DIR] [--only STRATEGY] [--profile]

Builds an engine with ``freshrec bench``'s workload (the catalog with 384-d vectors, 3 warm-up events
per user over a day, then 200k streamed events of active users), optionally trains the CF model, then asks
every user strategy for ``N`` random active users' top 20 and prints the median and p99 of the wall time of
``Engine.recommend``, beside the same for a trivial call (``Engine.now``) as the floor of the measurement.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from freshrec.bench.ingest import DAY, bench_catalog, bench_settings
from freshrec.bench.serving import USER_STRATEGIES
from freshrec.bench.workload import Clickstream
from freshrec.engine import Engine
from freshrec.events import validate_events
from freshrec.storage.datadir import DataDir
from freshrec.threads import limit_blas


def build(users: int, items: int, cf: bool, keep: Path | None) -> tuple[Engine, list[str]]:
    """The engine; a data directory ``keep`` is reopened if it exists, else built and snapshotted."""
    settings = bench_settings()
    if keep is not None and (keep / "active.txt").exists():
        datadir = DataDir(keep, settings)
        engine = datadir.open_engine()
        if cf:
            engine.cf.fit(engine.cf.collect(engine.store, engine.total_applied()[0]))
        return engine, (keep / "active.txt").read_text().split()
    datadir = DataDir(keep, settings) if keep is not None else None
    engine = datadir.open_engine() if datadir is not None else Engine(settings)
    products = bench_catalog(items)
    for lo in range(0, len(products), 5000):
        engine.upsert_items(products[lo : lo + 5000])
    stream = Clickstream(products, users)
    for chunk in stream.warm(3, DAY):
        for lo in range(0, len(chunk), 1000):
            engine.ingest_events(validate_events(chunk[lo : lo + 1000], settings.events))
    active: set[str] = set()
    for chunk in stream.stream(200_000, stream.start + DAY, 600.0):
        active.update(str(e["user_id"]) for e in chunk)
        for lo in range(0, len(chunk), 1000):
            engine.ingest_events(validate_events(chunk[lo : lo + 1000], settings.events))
    if cf:
        engine.cf.fit(engine.cf.collect(engine.store, engine.total_applied()[0]))
    if datadir is not None and keep is not None:
        datadir.snapshot()
        (keep / "active.txt").write_text("\n".join(sorted(active)))
    return engine, sorted(active)


def timed(call: object, users: list[str]) -> tuple[float, float]:
    spent = []
    for user in users:
        started = time.perf_counter()
        call(user)  # type: ignore[operator]
        spent.append(time.perf_counter() - started)
    us = np.asarray(spent) * 1e6
    return float(np.median(us)), float(np.percentile(us, 99))


def main() -> None:
    limit_blas()
    parser = argparse.ArgumentParser()
    parser.add_argument("users", type=int)
    parser.add_argument("items", type=int)
    parser.add_argument("--cf", action="store_true")
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--keep", type=Path, help="a data directory to reuse between runs")
    parser.add_argument("--profile", action="store_true", help="cProfile the strategies")
    args = parser.parse_args()
    started = time.perf_counter()
    engine, active = build(args.users, args.items, args.cf, args.keep)
    print(f"built in {time.perf_counter() - started:.1f} s; {len(active):,} active users", flush=True)
    rng = np.random.default_rng(7)
    users = [active[int(i)] for i in rng.integers(0, len(active), size=args.repeat)]
    p50, p99 = timed(lambda u: engine.now(), users)
    print(f"{'floor':18s} p50 {p50:9.1f} µs  p99 {p99:9.1f} µs")
    for strategy in args.only or USER_STRATEGIES:
        if strategy == "cf" and not args.cf:
            continue
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
        p50, p99 = timed(lambda u, s=strategy: engine.recommend(u, s, k=20), users)
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        print(f"{strategy:18s} p50 {p50:9.1f} µs  p99 {p99:9.1f} µs", flush=True)


if __name__ == "__main__":
    main()
