"""The catalog followed from a real PostgreSQL table: snapshot, changes, restarts, set-up errors.

A PostgreSQL server from Debian's binaries runs with ``wal_level = logical``; ``freshrec serve`` processes
follow one of its tables and every check goes through the HTTP API.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg
import pytest
from conftest import FRESHREC, Server, StartServer, free_port

from freshrec.bench.postgres import PostgresServer

LOGICAL = {"wal_level": "logical", "max_wal_senders": "4", "max_replication_slots": "4"}
# commits must reach the WAL on disk before logical decoding sees them (the bench's server defers that)
DURABLE = {"synchronous_commit": "on"}
TABLE = """
CREATE TABLE {name} (
    id bigint PRIMARY KEY, name text, category text, brand text, price numeric(10, 2),
    in_stock boolean, tags text[], attrs jsonb, description text, internal_note text
)
"""
COLUMNS = orjson.dumps(
    {"id": "item_id", "name": "title", "attrs": "properties", "description": "text", "internal_note": None}
).decode()
WAIT = 15.0
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer(settings={**LOGICAL, **DURABLE}) as server:
        yield server


def sql(server: PostgresServer, statement: str, params: Any = None) -> None:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def cdc_env(server: PostgresServer, table: str) -> dict[str, str]:
    return {
        "FRESHREC_CATALOG_POSTGRES__DSN": server.dsn,
        "FRESHREC_CATALOG_POSTGRES__TABLE": f"public.{table}",
        "FRESHREC_CATALOG_POSTGRES__COLUMNS": COLUMNS,
        "FRESHREC_CATALOG_POSTGRES__SLOT": f"slot_{table}",
        "FRESHREC_CATALOG_POSTGRES__PUBLICATION": f"pub_{table}",
        "FRESHREC_EMBEDDINGS__MODEL": "none",
        "FRESHREC_CF__ENABLED": "false",
    }


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def item(server: Server, item_id: str) -> dict[str, Any] | None:
    response = server.get(f"/v1/items/{item_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def metric(server: Server, name: str) -> float:
    text = server.get("/metrics").text
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


def test_table_changes_reach_the_catalog_and_survive_restarts(
    postgres: PostgresServer, start_server: StartServer
) -> None:
    table = "shop_items"
    sql(postgres, TABLE.format(name=table))
    long_text = secrets.token_hex(20_000)  # 40 kB that does not compress: stored out of line (TOAST)
    sql(
        postgres,
        f"INSERT INTO {table} VALUES (1, 'Trail shoe', 'sports', 'Acme', 89.90, true, '{{running,trail}}', "
        """'{"color": "red"}', %s, 'do not export'), """
        "(2, 'Novel', 'books', NULL, 12, false, NULL, NULL, NULL, NULL)",
        [long_text],
    )
    server = start_server(env=cdc_env(postgres, table))
    eventually(lambda: item(server, "2") is not None, "the snapshot is loaded")
    first = item(server, "1")
    assert first is not None
    fields = ("title", "category", "brand", "price", "in_stock", "tags", "properties")
    assert {k: first[k] for k in fields} == {
        "title": "Trail shoe",
        "category": "sports",
        "brand": "Acme",
        "price": 89.9,
        "in_stock": True,
        "tags": ["running", "trail"],
        "properties": {"color": "red"},
    }
    assert first["text"] == long_text
    assert "internal_note" not in first
    second = item(server, "2")
    assert second is not None
    assert (second["brand"], second["price"], second["in_stock"], second["tags"]) == (None, 12.0, False, [])

    # insert, update (the long description is not in the change: it must be kept), delete, key change
    sql(postgres, f"INSERT INTO {table} (id, name, category, price) VALUES (3, 'Tent', 'outdoor', 250)")
    eventually(lambda: item(server, "3") is not None, "an inserted row appears")
    sql(postgres, f"UPDATE {table} SET price = 79.5, tags = '{{sale}}' WHERE id = 1")
    eventually(lambda: (item(server, "1") or {}).get("price") == 79.5, "an update appears")
    updated = item(server, "1")
    assert updated is not None
    assert (updated["tags"], updated["text"], updated["title"]) == (["sale"], long_text, "Trail shoe")
    sql(postgres, f"DELETE FROM {table} WHERE id = 2")
    eventually(lambda: item(server, "2") is None, "a deleted row leaves")
    sql(postgres, f"UPDATE {table} SET id = 4 WHERE id = 3")
    eventually(lambda: item(server, "4") is not None and item(server, "3") is None, "a key change")
    # one transaction of several changes
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute(f"INSERT INTO {table} (id, name, category) VALUES (5, 'Lamp', 'home')")
        conn.execute(f"UPDATE {table} SET name = 'Desk lamp' WHERE id = 5")
    eventually(lambda: (item(server, "5") or {}).get("title") == "Desk lamp", "a multi-change transaction")
    # insert, update, delete, key change (a delete and a put), the transaction's two puts
    assert metric(server, "freshrec_catalog_cdc_changes_total") == 7

    # changes made while freshrec is stopped appear after the restart, each applied once
    server.stop()
    sql(postgres, f"INSERT INTO {table} (id, name, category) VALUES (6, 'Chair', 'home')")
    sql(postgres, f"UPDATE {table} SET category = 'running' WHERE id = 1")
    sql(postgres, f"DELETE FROM {table} WHERE id = 4")
    server.start()
    eventually(lambda: item(server, "4") is None, "the changes made while stopped")
    assert (item(server, "6") or {}).get("title") == "Chair"
    assert (item(server, "1") or {}).get("category") == "running"
    assert (item(server, "1") or {}).get("text") == long_text
    assert metric(server, "freshrec_catalog_cdc_changes_total") == 3

    # a crash (kill -9) after a change was applied: it is not applied again, the next one is
    sql(postgres, f"UPDATE {table} SET brand = 'Zed' WHERE id = 6")
    eventually(lambda: (item(server, "6") or {}).get("brand") == "Zed", "an update before the crash")
    server.kill9()
    sql(postgres, f"INSERT INTO {table} (id, name) VALUES (7, 'Mug')")
    server.start()
    eventually(lambda: item(server, "7") is not None, "the change made while crashed")
    assert metric(server, "freshrec_catalog_cdc_changes_total") == 1
    expected = {"1", "5", "6", "7"}
    assert {i for i in map(str, range(1, 8)) if item(server, i) is not None} == expected


def serve_error(dsn: str, table: str = "public.items") -> str:
    """``freshrec serve`` with catalog CDC that must refuse to start: its error output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHREC_")}
    env["FRESHREC_EMBEDDINGS__MODEL"] = "none"
    args = [str(FRESHREC), "serve", "--ephemeral", "--port", str(free_port())]
    args += ["--catalog-postgres", dsn, "--catalog-table", table]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode != 0, done.stdout
    return done.stderr


def test_refuses_a_server_without_logical_decoding() -> None:
    with PostgresServer(settings={"wal_level": "replica", "max_wal_senders": "4"}) as replica:
        sql(replica, "CREATE TABLE items (item_id text PRIMARY KEY, title text)")
        error = serve_error(replica.dsn)
    assert "wal_level = replica" in error
    assert "ALTER SYSTEM SET wal_level = logical" in error


def test_refuses_a_role_without_replication(postgres: PostgresServer) -> None:
    sql(postgres, "CREATE TABLE plain_items (item_id text PRIMARY KEY, title text)")
    sql(postgres, "CREATE ROLE shopper LOGIN")
    sql(postgres, "GRANT SELECT ON plain_items TO shopper")
    dsn = postgres.dsn.replace("user=freshrec", "user=shopper")
    error = serve_error(dsn, "public.plain_items")
    assert "role shopper" in error
    assert "REPLICATION" in error
    assert "ALTER ROLE shopper REPLICATION" in error


def test_refuses_a_table_whose_deletes_do_not_name_the_item(postgres: PostgresServer) -> None:
    sql(postgres, "CREATE TABLE keyless_items (item_id text, title text)")
    error = serve_error(postgres.dsn, "public.keyless_items")
    assert "REPLICA IDENTITY FULL" in error
