"""Restart of an embedded data directory: from a snapshot plus a log tail, against replaying the whole log.

    python bench/restart.py USERS ITEMS TAIL [DIR]

Builds a data directory with ``freshrec bench``'s workload (the catalog with 384-d vectors, 3 warm-up
events per user), writes a snapshot in the background as the server does (the fork's pause and the write
time are printed), appends ``TAIL`` more events to the log, then opens the directory again in a fresh
process twice: from the snapshot plus the tail, and with the snapshots moved aside (the whole log
replayed, which is how every restart worked before snapshots held the columns). Each line gives the seconds
to an engine ready to answer and the resident memory after it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from freshrec.bench.ingest import DAY, bench_catalog, bench_settings, rss_bytes
from freshrec.bench.workload import Clickstream
from freshrec.events import validate_events
from freshrec.storage import snapshot as on_disk
from freshrec.storage.datadir import DataDir


def build(path: Path, users: int, items: int, tail: int) -> None:
    settings = bench_settings()
    datadir = DataDir(path, settings)
    engine = datadir.open_engine()
    products = bench_catalog(items)
    for lo in range(0, len(products), 5000):
        engine.upsert_items(products[lo : lo + 5000])
    stream = Clickstream(products, users)
    for chunk in stream.warm(3, DAY):
        for lo in range(0, len(chunk), 1000):
            engine.ingest_events(validate_events(chunk[lo : lo + 1000], settings.events))
    print(f"built {users:,} users × {items:,} items, rss {rss_bytes() / 2**20:,.0f} MiB", flush=True)
    written = datadir.snapshot(background=True)
    datadir.wait_snapshot()
    size = on_disk.size_bytes(written) / 2**20
    print(
        f"snapshot: {size:,.0f} MiB in {datadir.last_snapshot_s:.2f} s (forked), "
        f"ingestion held {(datadir.last_pause_s or 0) * 1000:.1f} ms",
        flush=True,
    )
    raw = [e for chunk in stream.stream(tail, stream.start + DAY, 600.0) for e in chunk]
    for lo in range(0, len(raw), 1000):
        engine.ingest_events(validate_events(raw[lo : lo + 1000], settings.events))
    datadir.close(snapshot=False)


def load(path: Path) -> None:
    started = time.perf_counter()
    datadir = DataDir(path, bench_settings())
    engine = datadir.open_engine()
    spent = time.perf_counter() - started
    print(f"{spent:.2f} s, {engine.applied_events:,} events, rss {rss_bytes() / 2**20:,.0f} MiB", flush=True)
    datadir.close(snapshot=False)


def main(users: int, items: int, tail: int, where: str | None) -> None:
    root = Path(tempfile.mkdtemp(prefix="freshrec-restart-", dir=where))
    try:
        path = root / "data"
        build(path, users, items, tail)
        run = [sys.executable, __file__, "load", str(path)]
        print("snapshot + tail:", end=" ", flush=True)
        subprocess.run(run, check=True)
        (path / "snapshots").rename(root / "aside")
        (path / "snapshots").mkdir()
        print("whole log:      ", end=" ", flush=True)
        subprocess.run(run, check=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(Path(sys.argv[2]))
    else:
        main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
