"""Where ingestion time goes: each view's share of ``Engine.ingest_events``, and a cProfile of it.

    python bench/profile_ingest.py --users 10000 --items 10000 --events 100000

The workload is ``freshrec bench``'s (:mod:`freshrec.bench.workload`, 3 warm-up events per user, then the
measured stream). The measured events are applied twice on copies of the same warmed state: once with every
view's ``apply`` wrapped in a timer (the per-view table; the wrapper's own cost is measured on an empty
function and subtracted), once under cProfile (the top functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from freshrec.bench.ingest import DAY, bench_catalog, bench_settings
from freshrec.bench.workload import Clickstream
from freshrec.engine import Engine
from freshrec.events import Event, validate_events


def warmed(users: int, items: int, events: int) -> tuple[bytes, list[list[Event]]]:
    settings = bench_settings()
    products = bench_catalog(items)
    stream = Clickstream(products, users)
    engine = Engine(settings)
    for lo in range(0, len(products), 5000):
        engine.upsert_items(products[lo : lo + 5000])
    for chunk in stream.warm(3, DAY):
        for lo in range(0, len(chunk), 1000):
            engine.ingest_events(
                validate_events(chunk[lo : lo + 1000], settings.events, received_at=time.time())
            )
    raw = [e for chunk in stream.stream(events, stream.start + DAY, 600.0) for e in chunk]
    batches = [
        validate_events(raw[lo : lo + 1000], settings.events, received_at=time.time())
        for lo in range(0, len(raw), 1000)
    ]
    return engine.snapshot(), batches


def per_view(blob: bytes, batches: list[list[Event]]) -> tuple[dict[str, float], float]:
    engine = Engine(bench_settings())
    engine.restore(blob)
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, apply: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            started = time.perf_counter()
            apply(*args)
            spent[name] += time.perf_counter() - started

        return run

    for view in engine._view_list:
        view.apply = timed(view.name, view.apply)  # type: ignore[method-assign]
    started = time.perf_counter()
    for batch in batches:
        engine.ingest_events(batch)
    total = time.perf_counter() - started
    # the wrapper's own cost per call (one call per view and event), measured on a function doing nothing
    empty = timed("_empty", lambda *a: None)
    t = time.perf_counter()
    for _ in range(100_000):
        empty(1, 2, 3, 4)
    overhead = (time.perf_counter() - t) / 100_000
    spent.pop("_empty")
    n = sum(len(b) for b in batches)
    shares = {name: max(0.0, s - overhead * n) for name, s in spent.items()}
    return shares, total - overhead * n * len(shares)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    blob, batches = warmed(args.users, args.items, args.events)
    n = sum(len(b) for b in batches)
    shares, total = per_view(blob, batches)
    print(f"{n:,} events, {n / total:,.0f} events/s without the timers\n")
    print("| view | µs per event | share |\n|---|---|---|")
    views_total = sum(shares.values())
    for name, s in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"| `{name}` | {s / n * 1e6:.1f} | {s / total:.0%} |")
    rest = total - views_total
    print(f"| engine outside the views | {rest / n * 1e6:.1f} | {rest / total:.0%} |")

    engine = Engine(bench_settings())
    engine.restore(blob)
    profile = cProfile.Profile()
    profile.enable()
    for batch in batches:
        engine.ingest_events(batch)
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print("\n```\n" + out.getvalue().strip() + "\n```")


if __name__ == "__main__":
    main()
