""" "Just use SQL": the same recommendations computed per request by DuckDB and PostgreSQL (SPEC §9).

A team without freshrec keeps its raw ``events`` and ``items`` tables and runs one query per request
(:mod:`freshrec.bench.sql_queries`). :func:`run_sql_alternatives` loads one workload into freshrec and into
each SQL engine, asks all of them the same requests, times each answer on the client side (rows fetched),
and checks that the answers are the same. freshrec and DuckDB (in memory) answer in this process; PostgreSQL
is a server of its own (:class:`~freshrec.bench.postgres.PostgresServer`) reached over loopback TCP. Both
SQL engines run prepared statements.

>>> sorted(STRATEGIES)
['personalized', 'session', 'trending']
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from typing import Any, Protocol

from freshrec.bench.sql_queries import (
    DUCKDB,
    DUCKDB_INDEXES,
    EVENT_COLUMNS,
    INDEXES,
    ITEM_COLUMNS,
    POSTGRES,
    SCHEMA,
    Queries,
)
from freshrec.catalog import Item
from freshrec.config import Settings, load_settings
from freshrec.engine import Engine
from freshrec.events import Event, validate_events

STRATEGIES = ("personalized", "session", "trending")
BATCH = 1000
WARMUP = 5

Answer = list[tuple[str, float]]
ItemRow = tuple[str, str | None, str | None, str | None, str | None, float | None, bool]
EventRow = tuple[str, str, str, str, float, str | None, float | None, str | None, str | None, float | None]


class SqlEngine(Protocol):
    name: str
    version: str
    now: float  # the largest event timestamp, read after the load

    def load(self, items: Sequence[ItemRow], events: Sequence[EventRow]) -> None: ...

    def recommend(self, strategy: str, user_id: str, k: int) -> Answer: ...

    def close(self) -> None: ...


def item_rows(items: Sequence[Item]) -> list[ItemRow]:
    latest = {item.item_id: item for item in items}  # an upsert of the same id replaces the earlier one
    return [
        (i.item_id, i.title, i.category, i.subcategory, i.brand, i.price, i.in_stock) for i in latest.values()
    ]


def event_rows(events: Sequence[Event]) -> list[EventRow]:
    seen: set[str] = set()
    rows: list[EventRow] = []
    for e in events:
        if e.event_id in seen:  # a repeated event_id is applied once (SPEC §1)
            continue
        seen.add(e.event_id)
        rows.append(
            (
                *(e.event_id, e.user_id, e.item_id, e.type, e.ts, e.session_id, e.dwell_seconds),
                *(e.category, e.brand, e.price),
            )
        )
    return rows


class DuckDBEngine:
    """DuckDB in this process, in memory; the queries run as prepared statements (``PREPARE``/``EXECUTE``)."""

    name = "duckdb"

    def __init__(self, settings: Settings) -> None:
        import duckdb

        self.con = duckdb.connect()
        self.version = str(duckdb.__version__)
        self.queries = Queries(settings, DUCKDB).all()
        self.now = 0.0

    def load(self, items: Sequence[ItemRow], events: Sequence[EventRow]) -> None:
        for statement in SCHEMA:
            self.con.execute(statement)
        for table, columns, rows in (("items", ITEM_COLUMNS, items), ("events", EVENT_COLUMNS, events)):
            self.con.register("incoming", _numpy_columns(columns, rows))
            names = ", ".join(columns)
            self.con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming")
            self.con.unregister("incoming")
        for statement in DUCKDB_INDEXES:
            self.con.execute(statement)
        self.con.execute("ANALYZE")
        self.now = _largest_ts(self.con.execute("SELECT MAX(ts) FROM events").fetchone())
        for strategy, (sql, _) in self.queries.items():
            self.con.execute(f"PREPARE {strategy} AS {sql}")

    def recommend(self, strategy: str, user_id: str, k: int) -> Answer:
        # EXECUTE takes literals only: text quoted, the float through its exact decimal form
        values = {
            "user": "'" + user_id.replace("'", "''") + "'",
            "k": str(int(k)),
            "now": f"CAST('{self.now!r}' AS DOUBLE)",
        }
        args = ", ".join(f"{name} := {values[name]}" for name in self.queries[strategy][1])
        rows = self.con.execute(f"EXECUTE {strategy}({args})").fetchall()
        return [(str(item_id), float(score)) for item_id, score in rows]

    def close(self) -> None:
        self.con.close()


def _numpy_columns(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """Columns as NumPy arrays DuckDB scans without copying through Python: text as objects, numbers as
    float64 with NaN for a missing value (DuckDB reads NaN of a NumPy float column as NULL)."""
    import numpy as np

    out: dict[str, Any] = {}
    for n, name in enumerate(columns):
        values = [row[n] for row in rows]
        if name in ("price", "ts", "dwell_seconds"):
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif name == "in_stock":
            out[name] = np.array(values, dtype=np.bool_)
        else:
            out[name] = np.array(values, dtype=object)
    return out


class PostgresEngine:
    """A PostgreSQL server through psycopg 3 over loopback TCP; loaded with ``COPY``; prepared statements."""

    name = "postgres"

    def __init__(self, settings: Settings, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        row = self.conn.execute("SHOW server_version").fetchone()
        self.version = "" if row is None else str(row[0])
        self.queries = Queries(settings, POSTGRES).all()
        self.now = 0.0

    def load(self, items: Sequence[ItemRow], events: Sequence[EventRow]) -> None:
        for statement in SCHEMA:
            self.conn.execute(statement)
        with self.conn.cursor() as cur:
            for table, columns, rows in (("items", ITEM_COLUMNS, items), ("events", EVENT_COLUMNS, events)):
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        for statement in INDEXES:
            self.conn.execute(statement)
        self.conn.execute("VACUUM ANALYZE")
        self.now = _largest_ts(self.conn.execute("SELECT MAX(ts) FROM events").fetchone())

    def recommend(self, strategy: str, user_id: str, k: int) -> Answer:
        sql, names = self.queries[strategy]
        values = {"user": user_id, "k": k, "now": self.now}
        cur = self.conn.execute(sql, {name: values[name] for name in names}, prepare=True)
        return [(str(item_id), float(score)) for item_id, score in cur.fetchall()]

    def close(self) -> None:
        self.conn.close()


def _largest_ts(row: tuple[Any, ...] | None) -> float:
    return 0.0 if row is None or row[0] is None else float(row[0])


def build_engine(
    items: list[dict[str, Any]], events: list[dict[str, Any]], settings: Settings
) -> tuple[Engine, list[Item], list[Event]]:
    """freshrec's engine fed like the foundation benchmark: the items, then events in 1,000-event batches."""
    validated: list[Event] = []
    for start in range(0, len(events), BATCH):
        validated.extend(
            validate_events(events[start : start + BATCH], settings.events, received_at=time.time())
        )
    engine = Engine(settings)
    catalog = engine.upsert_items(items)
    for start in range(0, len(validated), BATCH):
        engine.ingest_events(validated[start : start + BATCH])
    return engine, catalog, validated


def percentiles(latencies_s: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


def timed(answer: Callable[[str], Answer], users: Sequence[str]) -> tuple[list[float], list[Answer]]:
    """Answers for ``users`` one after the other, and the wall time of each (after a short warm-up)."""
    for user in users[:WARMUP]:
        answer(user)
    latencies: list[float] = []
    answers: list[Answer] = []
    for user in users:
        started = time.perf_counter()
        got = answer(user)
        latencies.append(time.perf_counter() - started)
        answers.append(got)
    return latencies, answers


def agreement(expected: Sequence[Answer], got: Sequence[Answer]) -> dict[str, float]:
    """Share of requests answered with the same item ids in the same order, and their largest score gap."""
    same = 0
    gap = 0.0
    for want, have in zip(expected, got, strict=True):
        if [i for i, _ in want] == [i for i, _ in have]:
            same += 1
            gap = max([gap, *(abs(a - b) for (_, a), (_, b) in zip(want, have, strict=True))])
    return {"agreement": same / max(1, len(expected)), "max_score_diff": gap}


def run_sql_alternatives(
    items: list[dict[str, Any]],
    events: list[dict[str, Any]],
    users: Sequence[str],
    *,
    k: int = 20,
    requests: int = 200,
    engines: Sequence[str] = ("duckdb", "postgres"),
    progress: Callable[[str], None] | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Per-request latency of freshrec and of each SQL engine on one workload, and their agreement.

    ``requests`` users are drawn from ``users`` (with replacement, by ``seed``); each strategy is asked for
    each of them, by freshrec in-process and by every engine of ``engines``. Returns::

        {"workload": {"items", "events", "requests", "k", "now", "freshrec_build_s"},
         "freshrec": {STRATEGY: {"p50_ms", "p99_ms"}},
         ENGINE: {"load_s", STRATEGY: {"p50_ms", "p99_ms", "agreement", "max_score_diff"}},
         "ratio_vs_ENGINE": {STRATEGY: ENGINE p50 / freshrec p50},
         "ratio_p99_vs_ENGINE": {STRATEGY: ENGINE p99 / freshrec p99},
         "versions": {ENGINE: version}}
    """
    say = progress or (lambda line: None)
    unknown = set(engines) - {"duckdb", "postgres"}
    if unknown:
        raise ValueError(f"unknown SQL engines {sorted(unknown)}; available: duckdb, postgres")
    if not users:
        raise ValueError("no users to ask for recommendations")
    # item embeddings serve none of these strategies and take ~20 ms an item to compute: turned off
    settings = load_settings(clock="event", embeddings={"model": "none"})
    started = time.perf_counter()
    freshrec, catalog, validated = build_engine(items, events, settings)
    built_s = time.perf_counter() - started
    say(f"freshrec: {len(catalog):,} items, {len(validated):,} events in {built_s:.1f} s")
    asked = random.Random(seed).choices(list(users), k=requests)
    result: dict[str, Any] = {
        "workload": {
            "items": len(catalog),
            "events": len(validated),
            "requests": requests,
            "k": k,
            "now": freshrec.now(),
            "freshrec_build_s": built_s,
        },
        "freshrec": {},
        "versions": {},
    }
    expected: dict[str, list[Answer]] = {}
    for strategy in STRATEGIES:

        def ask(user: str, strategy: str = strategy) -> Answer:
            return [(r.item_id, r.score) for r in freshrec.recommend(user, strategy, k=k)]

        latencies, expected[strategy] = timed(ask, asked)
        result["freshrec"][strategy] = percentiles(latencies)
        say(f"freshrec {strategy}: p50 {result['freshrec'][strategy]['p50_ms']:.3f} ms")

    tables = (item_rows(catalog), event_rows(validated))
    for name in engines:
        with ExitStack() as stack:
            sql = _open(name, settings, stack)
            started = time.perf_counter()
            sql.load(*tables)
            figures: dict[str, Any] = {"load_s": time.perf_counter() - started}
            say(f"{name} {sql.version}: loaded in {figures['load_s']:.1f} s")
            for strategy in STRATEGIES:

                def ask_sql(user: str, strategy: str = strategy, sql: SqlEngine = sql) -> Answer:
                    return sql.recommend(strategy, user, k)

                latencies, answers = timed(ask_sql, asked)
                f = figures[strategy] = percentiles(latencies) | agreement(expected[strategy], answers)
                say(f"{name} {strategy}: p50 {f['p50_ms']:.2f} ms, agreement {f['agreement']:.3f}")
            result[name] = figures
            result["versions"][name] = sql.version
        for prefix, figure in (("ratio_vs_", "p50_ms"), ("ratio_p99_vs_", "p99_ms")):
            result[prefix + name] = {
                s: figures[s][figure] / max(result["freshrec"][s][figure], 1e-9) for s in STRATEGIES
            }
    return result


def _open(name: str, settings: Settings, stack: ExitStack) -> SqlEngine:
    """The SQL engine ``name``, closed (and its server stopped) when ``stack`` closes."""
    if name == "duckdb":
        return stack.enter_context(closing(DuckDBEngine(settings)))
    from freshrec.bench.postgres import PostgresServer

    server = stack.enter_context(PostgresServer())
    return stack.enter_context(closing(PostgresEngine(settings, server.dsn)))
