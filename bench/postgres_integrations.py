"""How fast the PostgreSQL integrations move a change: catalog CDC and the feature sink.

    python bench/postgres_integrations.py [--changes 50] [--bulk 5000]

Starts a PostgreSQL server (Debian's binaries, ``wal_level = logical``) and ``freshrec serve --ephemeral``
following its ``items`` table and sinking ``user_category_affinity``. Prints, for ``--changes`` single-row
updates made one after another, the time from each commit to the change being visible in
``GET /v1/items/{id}`` (median, p95, max); the time for a ``--bulk``-row insert in one transaction to be in
the catalog; and for single events, the time from the ``202`` to the row being in the feature table.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from freshrec.bench.postgres import PostgresServer, free_port


def wait(check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until ``check()`` holds."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise SystemExit("timed out")
        time.sleep(0.002)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--bulk", type=int, default=5000)
    args = parser.parse_args()
    settings = {"wal_level": "logical", "max_wal_senders": "4", "synchronous_commit": "on"}
    with PostgresServer(settings=settings) as pg, psycopg.connect(pg.dsn, autocommit=True) as db:
        db.execute("CREATE TABLE items (item_id text PRIMARY KEY, title text, category text, price numeric)")
        db.execute("INSERT INTO items VALUES ('i0', 'first', 'books', 1)")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHREC_")}
        env.update(
            {
                "FRESHREC_EMBEDDINGS__MODEL": "none",
                "FRESHREC_CF__ENABLED": "false",
                "FRESHREC_FEATURE_SINK__VIEWS": '["user_category_affinity"]',
            }
        )
        script = Path(sys.executable).with_name("freshrec")
        args_ = [str(script), "serve", "--ephemeral", "--port", str(port), "--catalog-postgres", pg.dsn]
        args_ += ["--catalog-table", "public.items", "--feature-sink-postgres", pg.dsn]
        with tempfile.TemporaryFile() as log:
            server = subprocess.Popen(args_, env=env, stdout=log, stderr=log)
            try:
                client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

                def has(item_id: str, price: float | None = None) -> bool:
                    try:
                        r = client.get(f"/v1/items/{item_id}")
                    except httpx.TransportError:
                        return False
                    return r.status_code == 200 and (price is None or r.json()["price"] == price)

                wait(functools.partial(has, "i0"), 60)
                delays = []
                for n in range(args.changes):
                    db.execute("UPDATE items SET price = %s WHERE item_id = 'i0'", [n + 2])
                    delays.append(wait(functools.partial(has, "i0", float(n + 2))))
                delays.sort()
                print(
                    f"catalog CDC, single updates: median {statistics.median(delays) * 1000:.0f} ms, "
                    f"p95 {delays[int(len(delays) * 0.95) - 1] * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms"
                )
                copy_sql = "COPY items (item_id, title, category, price) FROM STDIN"
                with db.transaction(), db.cursor().copy(copy_sql) as copy:
                    for n in range(args.bulk):
                        copy.write_row((f"b{n}", f"bulk {n}", "toys", n))
                bulk = wait(functools.partial(has, f"b{args.bulk - 1}"), 120)
                print(f"catalog CDC, {args.bulk} rows in one transaction: in the catalog after {bulk:.2f} s")

                def in_table(user: str) -> bool:
                    found = db.execute(
                        "SELECT 1 FROM freshrec_user_category_affinity WHERE user_id = %s", [user]
                    )
                    return found.fetchone() is not None

                sink = []
                for n in range(20):
                    body = {"user_id": f"u{n}", "item_id": "i0", "type": "view", "category": "books"}
                    client.post("/v1/events", json=body).raise_for_status()
                    sink.append(wait(functools.partial(in_table, f"u{n}")))
                sink.sort()
                print(
                    f"feature sink, single events: median {statistics.median(sink) * 1000:.0f} ms, "
                    f"max {sink[-1] * 1000:.0f} ms (flush_interval_seconds = 1)"
                )
            finally:
                server.terminate()
                server.wait(20)


if __name__ == "__main__":
    main()
