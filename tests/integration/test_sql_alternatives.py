"""The "just use SQL" alternative of the benchmark gives freshrec's answers, on DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import psycopg
import pytest

from freshrec.bench.postgres import BIN_ENV, PostgresServer
from freshrec.bench.sql_alternatives import STRATEGIES, run_sql_alternatives
from freshrec.demo.scenario import generate_scenario


def workload() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The demo shop, plus events that describe their item themselves, a repeated event and a new user."""
    sc = generate_scenario(n_users=120, n_items=300, seed=3, duration_seconds=6 * 3600)
    events = list(sc.events)
    rng = random.Random(5)
    categories = sorted({it["category"] for it in sc.items})
    brands = sorted({it["brand"] for it in sc.items})
    described = rng.sample([u.user_id for u in sc.users], 15)
    for n, user in enumerate(described):
        for j, kind in enumerate(("view", "click", "purchase", "view")):
            item = rng.choice(sc.items)
            events.append(
                {
                    "event_id": f"described-{n}-{j}",
                    "user_id": user,
                    "item_id": item["item_id"],
                    "type": kind,
                    # arriving late, inside and outside the 3-h and 2-h windows
                    "timestamp": sc.end - rng.uniform(0, 5 * 3600),
                    "category": rng.choice(categories),
                    "brand": rng.choice(brands),
                    "price": rng.choice([9.5, 60.0, 250.0, 900.0]),
                }
            )
    events.append(dict(events[-1]))  # the same event_id again: applied once
    others = [u.user_id for u in sc.users if u.user_id not in described][:10]
    return sc.items, events, [*described, *others, "user-without-events"]


@pytest.mark.heavy
def test_sql_answers_equal_freshrec_on_duckdb_and_postgres() -> None:
    items, events, users = workload()
    lines: list[str] = []

    result = run_sql_alternatives(items, events, users, k=20, requests=40, progress=lines.append)

    assert result["workload"]["events"] == len(events)
    assert result["workload"]["items"] == len(items)
    assert result["workload"]["freshrec_build_s"] > 0
    for engine in ("duckdb", "postgres"):
        figures = result[engine]
        assert figures["load_s"] > 0
        for strategy in STRATEGIES:
            assert figures[strategy]["agreement"] == 1.0, (engine, strategy)
            assert figures[strategy]["max_score_diff"] <= 1e-9, (engine, strategy)
            assert 0 < figures[strategy]["p50_ms"] <= figures[strategy]["p99_ms"]
            assert result[f"ratio_vs_{engine}"][strategy] > 0
            assert result[f"ratio_p99_vs_{engine}"][strategy] > 0
        assert result["versions"][engine]
    for strategy in STRATEGIES:
        assert 0 < result["freshrec"][strategy]["p50_ms"] <= result["freshrec"][strategy]["p99_ms"]
    assert result["versions"]["postgres"].split(".")[0].isdigit()
    assert any(line.startswith("postgres trending") for line in lines)


@pytest.mark.heavy
def test_postgres_server_runs_unprivileged_and_leaves_nothing_behind() -> None:
    with PostgresServer() as server:
        pid, directory = server.pid, server.directory
        assert pid is not None and directory is not None
        with psycopg.connect(server.dsn) as tcp, psycopg.connect(server.socket_dsn) as unix:
            assert tcp.execute("SHOW fsync").fetchone() == ("off",)
            assert unix.execute("SELECT current_user").fetchone() == ("freshrec",)
            row = tcp.execute("SELECT usesuper FROM pg_user WHERE usename = current_user").fetchone()
            assert row == (True,)
        owner = os.stat(directory / "data").st_uid
        assert owner != 0  # PostgreSQL refuses to run as root: it runs as an unprivileged account
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not directory.exists()


def test_postgres_binaries_missing_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BIN_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match=BIN_ENV):
        PostgresServer()
