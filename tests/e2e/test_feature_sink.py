"""Feature views sunk into a real PostgreSQL: tables equal to the engine's rows and to DuckDB queries.

``freshrec serve`` (event clock) is fed the generated shop; the sink writes ``user_category_affinity``,
``user_category_profile`` and ``content_trending``. Checked: after a restart (the full rewrite at start-up),
after late events (the incremental path: only the touched users and items are written), and after another
restart (rewriting everything changes no row).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import Server, StartServer
from psycopg.rows import dict_row

from freshrec.bench.postgres import PostgresServer
from support import VIEW_COLUMNS, build_reference, dataset, eventgen, query, row_differences

pytestmark = pytest.mark.heavy
VIEWS = ("user_category_affinity", "user_category_profile", "content_trending")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def metrics(server: Server, name: str) -> dict[str, float]:
    """Samples of metric ``name`` by their ``view`` label ("" when unlabelled)."""
    out: dict[str, float] = {}
    for labels, value in re.findall(
        rf'^{name}(?:{{view="([^"]*)"}})? ([0-9.e+-]+)$', server.get("/metrics").text, re.M
    ):
        out[labels] = float(value)
    return out


def settled(server: Server, full_syncs: int) -> bool:
    pending = metrics(server, "freshrec_feature_sink_pending_keys")
    synced = metrics(server, "freshrec_feature_sink_full_syncs").get("", 0.0)
    return synced >= full_syncs and len(pending) == len(VIEWS) and not any(pending.values())


def table_rows(postgres: PostgresServer, view: str) -> list[dict[str, Any]]:
    with psycopg.connect(postgres.dsn, row_factory=dict_row) as conn:
        rows = conn.execute(f"SELECT * FROM public.features_{view}").fetchall()
    return [dict(r) for r in rows]


def engine_rows(server: Server, view: str) -> list[dict[str, Any]]:
    body = server.get_json(f"/v1/views/{view}", limit=100_000)
    assert body["total"] == len(body["rows"])
    rows: list[dict[str, Any]] = body["rows"]
    return rows


def assert_tables_equal(postgres: PostgresServer, server: Server, reference: Any) -> None:
    for view in VIEWS:
        keys, columns = VIEW_COLUMNS[view]
        stored = table_rows(postgres, view)
        assert stored, view
        assert len({tuple(r[k] for k in keys) for r in stored}) == len(stored)  # no key twice
        problems = row_differences(engine_rows(server, view), stored, keys, columns)
        assert not problems, f"{view}: table vs engine rows\n" + "\n".join(problems)
        problems = row_differences(query(reference, f"SELECT * FROM v_{view}"), stored, keys, columns)
        assert not problems, f"{view}: table vs DuckDB\n" + "\n".join(problems)


def test_feature_tables_equal_the_views(postgres: PostgresServer, start_server: StartServer) -> None:
    items, events = dataset("default")
    env = {
        "FRESHREC_FEATURE_SINK__DSN": postgres.dsn,
        "FRESHREC_FEATURE_SINK__VIEWS": '["' + '", "'.join(VIEWS) + '"]',
        "FRESHREC_FEATURE_SINK__TABLE_PREFIX": "features_",
        "FRESHREC_FEATURE_SINK__FULL_SYNC_EVERY_SECONDS": "0",
        "FRESHREC_FEATURE_SINK__FLUSH_INTERVAL_SECONDS": "0.2",
        "FRESHREC_FEATURE_SINK__BATCH_KEYS": "7",  # several transactions per flush
        "FRESHREC_EMBEDDINGS__MODEL": "none",
        "FRESHREC_CF__ENABLED": "false",
    }
    server = start_server(clock="event", env=env)
    server.put_items(list(items))
    for chunk in eventgen.chunks(events, 500):
        server.send_events(chunk)
    eventually(lambda: settled(server, 1), "the sink wrote the touched keys")

    # the full rewrite at start-up: exact, windows that expired since their user's last event included
    server.restart()
    eventually(lambda: settled(server, 1), "the full rewrite at start-up")
    assert_tables_equal(postgres, server, build_reference(items, events))

    # late events (the clock stays): only the touched users and items are written, the tables stay exact
    now = max(e["timestamp"] for e in events)
    late = [
        {**e, "event_id": f"late-{n}", "timestamp": now - 60.0 * (n + 1)}
        for n, e in enumerate(events[:: len(events) // 12][:12])
    ]
    before = metrics(server, "freshrec_feature_sink_rows_upserted_total")
    server.send_events(late)
    eventually(
        lambda: settled(server, 1) and metrics(server, "freshrec_feature_sink_rows_upserted_total") != before,
        "the late events written",
    )
    assert metrics(server, "freshrec_feature_sink_full_syncs") == {"": 1.0}
    assert_tables_equal(postgres, server, build_reference(items, [*events, *late]))

    # a restart rewrites every row: nothing changes, nothing is duplicated or deleted
    server.restart()
    eventually(lambda: settled(server, 1), "the full rewrite after the restart")
    assert metrics(server, "freshrec_feature_sink_rows_upserted_total") == dict.fromkeys(VIEWS, 0.0)
    assert metrics(server, "freshrec_feature_sink_rows_deleted_total") == dict.fromkeys(VIEWS, 0.0)
    assert_tables_equal(postgres, server, build_reference(items, [*events, *late]))
    assert metrics(server, "freshrec_feature_sink_lag_seconds") == dict.fromkeys(VIEWS, 0.0)
