"""Ingestion events/s on one core with every view, and bytes of state per user and per item, at one size.

:func:`ingest_point` runs in its own process (see :mod:`freshrec.bench.child`):

1. the catalog (``items`` products with 384-d vectors, so ``user_interest`` maintains MiniLM-sized
   centroids without running the text model) is upserted: resident memory grown, per item;
2. warm-up: every one of ``users`` users gets ``per_user`` events over a day: memory grown, per user;
3. measured: ``measured`` more events (active users, about 8 events each in the next 10 minutes) are
   validated, then applied in batches of 1,000, as the server and the worker apply them: events/s of the
   apply alone and of validation. At the served size (``build_dir``) the apply includes the durable log.

On Redis the state lives in the Redis server's process: memory is its ``used_memory``, not this process's.
With ``breakdown`` the state's bytes per user are split by view (:mod:`freshrec.bench.memory`). With
``build_dir`` the state is written there as a data directory (the log and a trained CF model), which
the serving benchmark then serves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from freshrec.bench.child import Reporter
from freshrec.bench.workload import Clickstream, catalog
from freshrec.config import Settings, load_settings
from freshrec.engine import Engine
from freshrec.events import Event, validate_events
from freshrec.storage import snapshot as on_disk

BATCH = 1000
EMBED_DIM = 384
DAY = 86_400.0


def bench_settings(state: str = "memory://") -> Settings:
    """Engine settings of every measurement: event clock, caller-given 384-d vectors, no scheduled CF."""
    return load_settings(
        clock="event",
        state=state,
        embeddings={"model": f"precomputed:{EMBED_DIM}"},
        cf={"retrain_every_seconds": 0},
    )


def bench_catalog(n_items: int, seed: int = 1) -> list[dict[str, Any]]:
    """The demo catalog, every item with a deterministic random unit vector."""
    items = catalog(n_items, seed)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(items), EMBED_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for item, vector in zip(items, vectors, strict=True):
        item["embedding"] = vector.tolist()
    return items


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _redis_used(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url.split("?", 1)[0])
    try:
        deadline = time.monotonic() + 30
        while True:
            info: dict[str, Any] = client.info("memory")  # Valkey frees lazily: wait for it
            if not info.get("lazyfree_pending_objects") or time.monotonic() > deadline:
                return int(info["used_memory"])
            time.sleep(0.05)
    finally:
        client.close()


def _validated(settings: Settings, chunk: list[dict[str, Any]]) -> list[Event]:
    return validate_events(chunk, settings.events, received_at=time.time())


def ingest_point(
    reporter: Reporter,
    users: int,
    items: int,
    per_user: int,
    measured: int,
    state: str = "memory://",
    build_dir: str | None = None,
    breakdown: bool = False,
) -> dict[str, Any]:
    """One size of the scaling table (see the module's docstring)."""
    settings = bench_settings(state)
    redis_url = state if state.startswith(("redis://", "valkey://")) else None

    def used() -> int:
        return _redis_used(redis_url) if redis_url else rss_bytes()

    products = bench_catalog(items)
    stream = Clickstream(products, users)
    datadir = None
    if build_dir is not None:
        from freshrec.storage.datadir import DataDir

        datadir = DataDir(Path(build_dir), settings)
        engine = datadir.open_engine()  # journaled; snapshot after the warm-up, measured events its tail
    elif redis_url:
        from freshrec.distributed.catalog import StoreCatalog
        from freshrec.state.base import open_state

        store = open_state(state)
        engine = Engine(settings, store, StoreCatalog(store))
    else:
        engine = Engine(settings)
    base = used()
    for start in range(0, len(products), 5000):
        engine.upsert_items(products[start : start + 5000])
        reporter.step("catalog", min(len(products), start + 5000), len(products))
    after_items = used()

    total, done = users * per_user, 0
    for chunk in stream.warm(per_user, DAY):
        for start in range(0, len(chunk), BATCH):
            engine.ingest_events(_validated(settings, chunk[start : start + BATCH]))
        done += len(chunk)
        reporter.step("warm-up events", done, total)
    after_warm = used()
    snapshot_figures: dict[str, Any] = {}
    if datadir is not None:
        reporter.step("snapshot", 0, 1)
        written = datadir.snapshot(background=True)
        datadir.wait_snapshot()
        reporter.step("snapshot", 1, 1)
        snapshot_figures = {
            "snapshot_s": datadir.last_snapshot_s,
            "snapshot_pause_ms": (datadir.last_pause_s or 0.0) * 1000,
            "snapshot_bytes": on_disk.size_bytes(written),
        }

    raw = [event for chunk in stream.stream(measured, stream.start + DAY, 600.0) for event in chunk]
    started = time.perf_counter()
    batches = [_validated(settings, raw[s : s + BATCH]) for s in range(0, len(raw), BATCH)]
    validate_s = time.perf_counter() - started
    apply_s, done = 0.0, 0
    for batch in batches:
        started = time.perf_counter()
        engine.ingest_events(batch)
        apply_s += time.perf_counter() - started
        done += len(batch)
        reporter.step("measured events", done, len(raw))
    result: dict[str, Any] = {
        "users": users,
        "items": items,
        "warm_events_per_user": per_user,
        "measured_events": len(raw),
        "ingest_events_per_s": len(raw) / apply_s,
        "validate_events_per_s": len(raw) / validate_s,
        "state_bytes_per_item": (after_items - base) / items,
        "state_bytes_per_user": (after_warm - after_items) / users,
        "state_bytes_total": used() - base,
        "state": "redis" if redis_url else "memory",
        "durable_log": datadir is not None,
        **snapshot_figures,
    }
    if breakdown and not redis_url:
        from freshrec.bench.memory import breakdown as parts
        from freshrec.state.memory import MemoryState

        assert isinstance(engine.store, MemoryState)
        result["state_bytes_per_user_by_part"] = parts(
            engine.store, users, engine.columnar_views(), engine.vocabulary
        )
    if datadir is not None:
        reporter.step("CF training", 0, 1)
        engine.cf.fit(engine.cf.collect(engine.store, engine.total_applied()[0]))
        reporter.step("CF training", 1, 1)
        result["log_bytes_per_event"] = datadir.log.size_bytes() / (total + len(raw))
        datadir.close(snapshot=False)
        result["users_with_events"] = sorted({e["user_id"] for e in raw})[:5000]
    return result
