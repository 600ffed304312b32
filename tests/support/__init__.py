"""Test support: the generated data sets, their SQL reference in DuckDB, engines fed with them, comparisons.

The SQL below is written from SPEC §1-§4 (and the conformance brief that spells out their columns), not from
the engine's code: it is the independent reference the engine's views and strategies are compared against.
Data sets, DuckDB databases and engines are built once per process and shared by the test modules.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from freshrec.config import load_settings
from freshrec.engine import Engine
from support import eventgen

Row = dict[str, Any]

#: Named generator configurations: the default stream, and one whose clock ends exactly on an hour boundary.
DATASETS: dict[str, dict[str, Any]] = {
    "default": {"seed": 7},
    "hour_boundary": {"seed": 11, "end_ts": eventgen.BOUNDARY_END_TS},
}
#: Arrival orders the engine is fed in.
ORDERS = ("time", "late", "shuffled")
CHUNK = 500

HALF_LIFE_SECONDS = 30 * 86_400.0
WEEK = 604_800.0
HOUR = 3_600.0
RECENT_HORIZON = 3 * HOUR
TREND_SIZE = 7_200.0
TREND_SLIDE = 900.0
TREND_RETENTION = 7_200.0
CATEGORY_WINDOWS_KEPT = 4
HISTORY_LENGTH = 200

TYPES = eventgen.EVENT_TYPES
COUNT_COLUMNS = tuple(f"{t}_count" for t in TYPES)

#: view -> (key columns, value columns) as the engine's ``view_rows`` exposes them.
VIEW_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "user_category_profile": (
        ("user_id", "category"),
        ("affinity_score", "decayed_affinity", "unique_items_interacted", "last_engaged_at", *COUNT_COLUMNS),
    ),
    "user_category_affinity": (
        ("user_id", "category", "window_start"),
        (
            "window_end",
            "views",
            "clicks",
            "shares",
            "saves",
            "total_dwell_seconds",
            "avg_dwell_seconds",
            "affinity_score",
        ),
    ),
    "user_brand_profile": (
        ("user_id", "brand"),
        ("brand_affinity", "purchase_count", "last_brand_interaction"),
    ),
    "user_price_sensitivity": (
        ("user_id", "price_tier"),
        ("views", "purchases", "conversion_rate"),
    ),
    "user_recent_activity": (
        ("user_id", "category", "window_start"),
        ("window_end", "recent_interactions"),
    ),
    "content_trending": (
        ("item_id", "window_start"),
        ("window_end", "recent_views", "recent_clicks", "unique_users", "avg_dwell", "trending_score"),
    ),
    "item_popularity": (("item_id",), (*COUNT_COLUMNS, "weighted_total")),
    "user_history": (("user_id", "event_id"), ("item_id", "type", "timestamp")),
    "co_visits": (("before_item", "after_item"), ("frequency",)),
    "also_bought": (("item_id", "other_item_id"), ("users",)),
    "user_items": (("user_id", "item_id"), ("interactions", "weight")),
}


# ---------------------------------------------------------------------------------------------------------
# Data sets and arrival orders


@functools.cache
def dataset(name: str) -> tuple[list[eventgen.Item], list[eventgen.EventDict]]:
    """Items and events (in the generator's arrival order) of a named data set."""
    return eventgen.generate(**DATASETS[name])


def arrival(name: str, order: str) -> list[eventgen.EventDict]:
    """The events of data set ``name`` in arrival ``order`` (``time``, ``late`` or ``shuffled``)."""
    _, events = dataset(name)
    if order == "time":
        return eventgen.time_ordered(events)
    if order == "late":
        return list(events)
    if order == "shuffled":
        return eventgen.shuffled(events, seed=1234)
    raise ValueError(f"unknown arrival order {order!r}")


# ---------------------------------------------------------------------------------------------------------
# The SQL reference

_WEIGHTS_SQL = ", ".join(f"('{t}', {w!r})" for t, w in eventgen.TYPE_WEIGHTS.items())


def _type_counts(prefix: str = "") -> str:
    return ",\n".join(f"count(*) FILTER (WHERE {prefix}type = '{t}') AS {t}_count" for t in TYPES)


VIEW_SQL: dict[str, str] = {
    # Lifetime per (user, resolved category).
    "user_category_profile": f"""
        SELECT user_id, category,
               sum(weight) AS affinity_score,
               sum(weight * pow(2.0, -((SELECT now FROM clock) - ts) / {HALF_LIFE_SECONDS!r}))
                   AS decayed_affinity,
               count(DISTINCT item_id) AS unique_items_interacted,
               max(ts) AS last_engaged_at,
               {_type_counts()}
        FROM resolved WHERE category IS NOT NULL
        GROUP BY user_id, category
    """,
    # 7-day tumbling windows aligned to the epoch; the last 4 windows (by start) are kept.
    "user_category_affinity": f"""
        WITH w AS (
            SELECT *, floor(ts / {WEEK!r}) * {WEEK!r} AS window_start
            FROM resolved WHERE category IS NOT NULL
        ), agg AS (
            SELECT user_id, category, window_start, window_start + {WEEK!r} AS window_end,
                   count(*) FILTER (WHERE type = 'view') AS views,
                   count(*) FILTER (WHERE type = 'click') AS clicks,
                   count(*) FILTER (WHERE type = 'share') AS shares,
                   count(*) FILTER (WHERE type = 'save') AS saves,
                   coalesce(sum(dwell_seconds), 0.0) AS total_dwell_seconds,
                   avg(dwell_seconds) AS avg_dwell_seconds
            FROM w
            WHERE window_start >= floor((SELECT now FROM clock) / {WEEK!r}) * {WEEK!r}
                                  - {CATEGORY_WINDOWS_KEPT - 1} * {WEEK!r}
            GROUP BY user_id, category, window_start
        )
        SELECT *, views * 1 + clicks * 3 + saves * 5 + shares * 7 AS affinity_score FROM agg
    """,
    "user_brand_profile": """
        SELECT user_id, brand,
               sum(weight) AS brand_affinity,
               count(*) FILTER (WHERE type = 'purchase') AS purchase_count,
               max(ts) AS last_brand_interaction
        FROM resolved WHERE brand IS NOT NULL
        GROUP BY user_id, brand
    """,
    "user_price_sensitivity": """
        WITH agg AS (
            SELECT user_id, price_tier,
                   count(*) FILTER (WHERE type = 'view') AS views,
                   count(*) FILTER (WHERE type = 'purchase') AS purchases
            FROM resolved WHERE price IS NOT NULL
            GROUP BY user_id, price_tier
        )
        SELECT *, CASE WHEN views = 0 THEN NULL ELSE purchases / views END AS conversion_rate FROM agg
    """,
    # 1-h tumbling windows; "recent" = window_end >= now - 3 h.
    "user_recent_activity": f"""
        WITH w AS (
            SELECT *, floor(ts / {HOUR!r}) * {HOUR!r} AS window_start
            FROM resolved WHERE category IS NOT NULL
        )
        SELECT user_id, category, window_start, window_start + {HOUR!r} AS window_end,
               count(*) AS recent_interactions
        FROM w
        WHERE window_start + {HOUR!r} >= (SELECT now FROM clock) - {RECENT_HORIZON!r}
        GROUP BY user_id, category, window_start
    """,
    # HOP(size 2 h, slide 15 min): an event at ts is in every window [s, s + 2 h) with s a multiple of 900.
    # Windows are kept until 2 h after they close.
    "content_trending": f"""
        WITH w AS (
            SELECT e.*,
                   floor(ts / {TREND_SLIDE!r}) * {TREND_SLIDE!r} - k.range * {TREND_SLIDE!r} AS window_start
            FROM resolved e CROSS JOIN range({int(TREND_SIZE / TREND_SLIDE)}) AS k
        ), agg AS (
            SELECT item_id, window_start, window_start + {TREND_SIZE!r} AS window_end,
                   count(*) FILTER (WHERE type = 'view') AS recent_views,
                   count(*) FILTER (WHERE type = 'click') AS recent_clicks,
                   count(DISTINCT user_id) AS unique_users,
                   avg(dwell_seconds) AS avg_dwell
            FROM w
            WHERE window_start <= ts AND ts < window_start + {TREND_SIZE!r}
            GROUP BY item_id, window_start
        )
        SELECT *, recent_views * 1 + recent_clicks * 2 + unique_users * 3 AS trending_score
        FROM agg
        WHERE window_end >= (SELECT now FROM clock) - {TREND_RETENTION!r}
    """,
    "item_popularity": f"""
        SELECT item_id, {_type_counts()}, sum(weight) AS weighted_total
        FROM resolved GROUP BY item_id
    """,
    "user_history": f"""
        SELECT user_id, event_id, item_id, type, ts AS timestamp
        FROM events
        QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, event_id DESC) <= {HISTORY_LENGTH}
    """,
    # Every pair of one user's events with 0 < after.ts - before.ts <= 10 min (the self-join, no de-dup).
    "co_visits": """
        SELECT b.item_id AS before_item, a.item_id AS after_item, count(*) AS frequency
        FROM events b JOIN events a ON a.user_id = b.user_id AND b.ts < a.ts AND b.ts >= a.ts - 600
        GROUP BY 1, 2
    """,
    # Two different items: how many distinct users purchased both.
    "also_bought": """
        WITH bought AS (SELECT DISTINCT user_id, item_id FROM events WHERE type = 'purchase')
        SELECT x.item_id, y.item_id AS other_item_id, count(DISTINCT x.user_id) AS users
        FROM bought x JOIN bought y ON x.user_id = y.user_id AND x.item_id <> y.item_id
        GROUP BY 1, 2
    """,
    # Lifetime per (user, item): how many events and their summed type weights (the CF confidence).
    "user_items": """
        SELECT user_id, item_id, count(*) AS interactions, sum(weight) AS weight
        FROM resolved GROUP BY 1, 2
    """,
}


def _tier_sql(column: str) -> str:
    return (
        f"CASE WHEN {column} < 25 THEN 'budget' WHEN {column} < 100 THEN 'mid-range' "
        f"WHEN {column} < 500 THEN 'premium' ELSE 'luxury' END"
    )


@functools.cache
def reference_db(name: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding data set ``name`` and every view of SPEC §3 as a table ``v_<view>``."""
    return build_reference(*dataset(name))


def build_reference(
    items: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding ``items`` and ``events`` and every view of SPEC §3 as ``v_<view>``."""
    con = duckdb.connect(":memory:")
    with tempfile.TemporaryDirectory() as tmp:
        items_path = Path(tmp) / "items.jsonl"
        events_path = Path(tmp) / "events.jsonl"
        items_path.write_bytes(b"\n".join(orjson.dumps(i) for i in items))
        events_path.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
        con.execute(
            """
            CREATE TABLE items AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {
                item_id: 'VARCHAR', category: 'VARCHAR', brand: 'VARCHAR', price: 'DOUBLE',
                in_stock: 'BOOLEAN'})
            """,
            [str(items_path)],
        )
        con.execute(
            """
            CREATE TABLE raw_events AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {
                event_id: 'VARCHAR', user_id: 'VARCHAR', item_id: 'VARCHAR', type: 'VARCHAR',
                "timestamp": 'DOUBLE', session_id: 'VARCHAR', dwell_seconds: 'DOUBLE',
                category: 'VARCHAR', brand: 'VARCHAR', price: 'DOUBLE'})
            """,
            [str(events_path)],
        )
    con.execute(
        """
        -- Re-sends carry the same event_id and content: one row per event_id.
        CREATE TABLE events AS
        SELECT event_id, user_id, item_id, type, "timestamp" AS ts, session_id, dwell_seconds,
               category, brand, price
        FROM raw_events
        QUALIFY row_number() OVER (PARTITION BY event_id) = 1
        """
    )
    con.execute("CREATE TABLE clock AS SELECT max(ts) AS now FROM events")
    con.execute(
        f"CREATE TABLE weights(type VARCHAR, weight DOUBLE); INSERT INTO weights VALUES {_WEIGHTS_SQL}"
    )
    con.execute(
        f"""
        -- An event's own category/brand/price when given, else the catalog item's.
        CREATE TABLE resolved AS
        SELECT e.event_id, e.user_id, e.item_id, e.type, e.ts, e.dwell_seconds, w.weight,
               coalesce(e.category, i.category) AS category,
               coalesce(e.brand, i.brand) AS brand,
               coalesce(e.price, i.price) AS price,
               {_tier_sql("coalesce(e.price, i.price)")} AS price_tier
        FROM events e LEFT JOIN items i USING (item_id) JOIN weights w USING (type)
        """
    )
    con.execute(
        """
        -- What strategies rank (SPEC §2: items referenced by events but missing from the catalog still
        -- work): the catalog, plus every item seen only in events, each of its attributes taken from the
        -- latest event (by timestamp, then event_id) that carries it; such items count as in stock.
        CREATE TABLE recommendable AS
        SELECT item_id, category, brand, price, in_stock FROM items
        UNION ALL
        SELECT item_id,
               arg_max(category, (ts, event_id)) FILTER (WHERE category IS NOT NULL),
               arg_max(brand, (ts, event_id)) FILTER (WHERE brand IS NOT NULL),
               arg_max(price, (ts, event_id)) FILTER (WHERE price IS NOT NULL),
               true
        FROM events WHERE item_id NOT IN (SELECT item_id FROM items)
        GROUP BY item_id
        """
    )
    for view, sql in VIEW_SQL.items():
        con.execute(f"CREATE TABLE v_{view} AS {sql}")
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> list[Row]:
    """Rows of ``sql`` as dicts."""
    cursor = con.execute(sql, params) if params is not None else con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> Any:
    """The single value of ``sql``."""
    cursor = con.execute(sql, params) if params is not None else con.execute(sql)
    row = cursor.fetchone()
    assert row is not None
    return row[0]


def expected_view(name: str, view: str) -> list[Row]:
    """The reference rows of ``view`` for data set ``name``."""
    return query(reference_db(name), f"SELECT * FROM v_{view}")


# ---------------------------------------------------------------------------------------------------------
# Engines


@functools.cache
def engine_for(name: str, order: str) -> Engine:
    """An event-clock engine that was given the catalog, then the events in ``order``, in chunks of 500."""
    items, _ = dataset(name)
    # the fully shuffled order is up to the whole span (34 days) late: co_visits must allow that much
    settings = load_settings(
        clock="event", embeddings={"model": "none"}, views={"co_visit_allowed_lateness_seconds": 40 * 86_400}
    )
    engine = Engine.in_memory(settings)
    engine.upsert_items(items)
    for chunk in eventgen.chunks(arrival(name, order), CHUNK):
        engine.ingest(chunk)
    return engine


# ---------------------------------------------------------------------------------------------------------
# Comparison


def same_value(expected: Any, actual: Any) -> bool:
    """Equal, with floats compared at rel 1e-9 / abs 1e-9 and ``None`` equal only to ``None``."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(expected == actual)
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
    return bool(expected == actual)


def _key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(float(row[k]) if isinstance(row[k], int | float) else row[k] for k in keys)


def row_differences(
    expected: Iterable[Mapping[str, Any]],
    actual: Iterable[Mapping[str, Any]],
    keys: Sequence[str],
    columns: Sequence[str],
    limit: int = 12,
) -> list[str]:
    """Human-readable differences between two multisets of rows (empty when they are equal)."""
    problems: list[str] = []
    want: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in expected:
        want.setdefault(_key(row, keys), []).append(row)
    got: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in actual:
        missing_cols = [c for c in (*keys, *columns) if c not in row]
        if missing_cols:
            return [f"engine row lacks columns {missing_cols}: {dict(row)}"]
        got.setdefault(_key(row, keys), []).append(row)
    missing = sorted(set(want) - set(got), key=repr)
    unexpected = sorted(set(got) - set(want), key=repr)
    if missing or unexpected:
        problems.append(f"{len(missing)} rows missing, {len(unexpected)} unexpected rows")
    problems.extend(f"missing row {_named(keys, key)}: expected {dict(want[key][0])}" for key in missing)
    problems.extend(f"unexpected row {_named(keys, key)}: got {dict(got[key][0])}" for key in unexpected)
    for key in sorted(set(want) & set(got), key=repr):
        if len(want[key]) != len(got[key]):
            problems.append(f"key {key}: {len(want[key])} expected rows, {len(got[key])} engine rows")
            continue
        exp_row, act_row = want[key][0], got[key][0]
        bad = [c for c in columns if not same_value(exp_row[c], act_row[c])]
        if bad:
            detail = ", ".join(f"{c}: expected {exp_row[c]!r} got {act_row[c]!r}" for c in bad)
            problems.append(f"row {_named(keys, key)}: {detail}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more"]
    return problems


def _named(keys: Sequence[str], key: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(keys, key, strict=True))
