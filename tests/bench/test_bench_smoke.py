"""``freshrec bench --sizes tiny``: every step runs and every figure is reported (never how fast it is)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from freshrec.bench.serving import USER_STRATEGIES
from freshrec.bench.sizes import TINY

pytestmark = pytest.mark.heavy

SQL_STRATEGIES = ("personalized", "session", "trending")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _latency(run: dict[str, Any], key: str) -> bool:
    """A latency is a number, or null when no request of the run was answered (a stalled server: slow, which
    this test never judges, but then every request must be counted as an error)."""
    return _number(run[key]) or (run[key] is None and run["ok"] == 0 and run["errors"] == run["requests"])


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    exe = Path(sys.executable).with_name("freshrec")
    done = subprocess.run(
        [str(exe), "bench", "--sizes", "tiny", "--json", str(out / "b.json"), "--report", str(out / "b.md")],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return orjson.loads((out / "b.json").read_bytes()), out


def test_every_spec_figure_is_reported(bench_run: tuple[dict[str, Any], Path]) -> None:
    r, _ = bench_run
    for key in (
        "ingest_events_per_s_per_core",
        "ingest_redis_events_per_s_per_core",
        "fresh_p50_ms",
        "fresh_p99_ms",
        "fresh_p99_ms_distributed",
        "state_bytes_per_user",
        "state_bytes_per_item",
        "state_gib_per_1m_users",
        "redis_state_bytes_per_user",
        "max_throughput_rps_empty",
        "ratio_vs_duckdb",
        "ratio_vs_postgres",
        "ingest_ratio_vs_stream_processor",
        "snapshot_s",
        "snapshot_pause_ms",
        f"restart_s_at_{TINY.serve[0]}_users",
    ):
        assert _number(r.get(key)), (key, r.get(key))
    assert "recs_p99_ms_at_1000rps" in r
    assert set(r["targets"]) == {
        "ingest_events_per_s_per_core",
        "fresh_p99_ms",
        "fresh_p99_ms_distributed",
        "recs_p99_ms_at_1000rps",
        "state_gib_per_1m_users",
        "state_bytes_per_user",
        "restart_s_at_1m_users",
    }
    for key, target in r["targets"].items():
        if key == "restart_s_at_1m_users":  # reported at the full size only
            assert target["value"] is None and target["met"] is None
            continue
        assert isinstance(target["met"], bool) or (
            key == "recs_p99_ms_at_1000rps" and target["value"] is None
        )


def test_scaling_grid_and_serving_cover_every_size_strategy_and_rate(
    bench_run: tuple[dict[str, Any], Path],
) -> None:
    r, _ = bench_run
    assert [(p["users"], p["items"]) for p in r["ingest_grid"]] == list(TINY.grid)
    for point in r["ingest_grid"]:
        assert point["measured_events"] == TINY.measured
        assert all(
            _number(point[k]) for k in ("ingest_events_per_s", "state_bytes_per_user", "state_bytes_per_item")
        )
    serving = r["serving"]
    assert set(serving["strategies"]) == set(USER_STRATEGIES)
    for strategy in USER_STRATEGIES:
        runs = serving["strategies"][strategy]
        assert set(runs) == {str(int(rate)) for rate in TINY.rates}
        for run in runs.values():
            assert run["ok"] + run["errors"] == run["requests"] > 0
            assert all(_latency(run, k) for k in ("p50_ms", "p99_ms", "p999_ms"))
            prefix = "recs" if strategy == "personalized" else f"recs_{strategy}"
            assert f"{prefix}_p99_ms_at_{int(run['rate'])}rps" in r
            assert _number(run["drain_seconds"])
        assert _number(r[f"max_throughput_ratio_vs_empty_{strategy}"])
    assert serving["freshness"]["probes"] + serving["freshness"]["failed"] > 0
    assert serving["freshness"]["failed"] == 0  # every purchase showed in the answer


def test_alternatives_give_the_same_answers(bench_run: tuple[dict[str, Any], Path]) -> None:
    r, _ = bench_run
    for engine in ("duckdb", "postgres"):
        for strategy in SQL_STRATEGIES:
            assert r["sql"][engine][strategy]["agreement"] == 1.0, (engine, strategy)
            assert _number(r[f"ratio_vs_{engine}_{strategy}"])
    assert _number(r["stream"]["events_per_s"]) and r["stream"]["views"]


def test_report_and_plot_are_written(bench_run: tuple[dict[str, Any], Path]) -> None:
    r, out = bench_run
    text = (out / "b.md").read_text()
    assert (out / "b.png").stat().st_size > 10_000
    for heading in (
        "SPEC §9 targets",
        "Ingestion and state",
        "Redis state",
        "Distributed freshness",
        "Serving",
    ):
        assert heading in text
    assert f"{r['machine']['cpus']} CPUs" in text and "freshrec bench --sizes tiny" in text
