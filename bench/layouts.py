"""Ingestion with the columnar views against the per-event, primitives-based ones, on the same workload.

    python bench/layouts.py legacy 10000 10000 30000
    python bench/layouts.py columnar 10000 10000 30000

Run both back to back (one process each, so resident memory is its own): ``freshrec bench``'s workload
(:mod:`freshrec.bench.workload`), 3 warm-up events per user, then the measured events applied in batches of
1,000. ``legacy`` builds the embedded engine with the views the Redis back end uses.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import freshrec.engine as engine_module
from freshrec.bench.ingest import DAY, bench_catalog, bench_settings, rss_bytes
from freshrec.bench.workload import Clickstream
from freshrec.events import validate_events
from freshrec.views import registry


def main(layout: str, users: int, items: int, measured: int) -> None:
    build = registry.build_views

    def views(settings: Any, vector_of: Any, columnar: bool, tiers: list[str]) -> registry.ViewSet:
        return build(settings, vector_of, layout == "columnar", tiers)

    engine_module.build_views = views  # type: ignore[assignment]
    settings = bench_settings()
    products = bench_catalog(items)
    stream = Clickstream(products, users)
    engine = engine_module.Engine(settings)
    for lo in range(0, len(products), 5000):
        engine.upsert_items(products[lo : lo + 5000])
    base = rss_bytes()
    for chunk in stream.warm(3, DAY):
        for lo in range(0, len(chunk), 1000):
            engine.ingest_events(validate_events(chunk[lo : lo + 1000], settings.events))
    warm = rss_bytes()
    raw = [e for chunk in stream.stream(measured, stream.start + DAY, 600.0) for e in chunk]
    batches = [validate_events(raw[lo : lo + 1000], settings.events) for lo in range(0, len(raw), 1000)]
    started = time.perf_counter()
    for batch in batches:
        engine.ingest_events(batch)
    spent = time.perf_counter() - started
    print(f"{layout}: {len(raw) / spent:,.0f} events/s; bytes/user {(warm - base) / users:,.0f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
