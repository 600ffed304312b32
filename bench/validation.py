"""Event validation events/s: the full (pydantic) path against ``validate_events`` with its fast path.

    python bench/validation.py

``freshrec bench``'s measured stream (100k events of 10k users over 10 minutes) validated in batches of
1,000, three runs of each path in the same process; prints the median and every run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from freshrec.bench.ingest import DAY, bench_catalog, bench_settings
from freshrec.bench.workload import Clickstream
from freshrec.events import Event, _validate_fully, validate_events


def main() -> None:
    settings = bench_settings().events
    stream = Clickstream(bench_catalog(2000), 10_000)
    raw = [e for chunk in stream.stream(100_000, stream.start + DAY, 600.0) for e in chunk]
    now = time.time()
    paths: dict[str, Callable[[list[dict[str, Any]]], list[Event]]] = {
        "full": lambda batch: _validate_fully(batch, False, settings, now),
        "fast": lambda batch: validate_events(batch, settings, now),
    }
    for name, validate in paths.items():
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for lo in range(0, len(raw), 1000):
                validate(raw[lo : lo + 1000])
            runs.append(len(raw) / (time.perf_counter() - started))
        print(
            f"{name}: {statistics.median(runs):,.0f} events/s (runs: {', '.join(f'{r:,.0f}' for r in runs)})"
        )


if __name__ == "__main__":
    main()
