"""Bounded state (``retention.*``): after users are forgotten, every view equals its SQL definition computed
by DuckDB over the events that are still retained (docs/state.md, "Bounded state").

The stream has many users with long idle gaps; it is fed in time order, in chunks, with the event clock and
a 2-day TTL looked for after every chunk. Which events are retained is computed here in SQL from the
arrival order alone: a user's event starts a new *incarnation* when, after the chunk before it, the clock
was more than the TTL past the user's previous event (the user was forgotten meanwhile); the events of a
user's last incarnation are retained unless the final clock is more than the TTL past its newest event.

* Views keyed by user (and ``purchased_items``) equal the SQL over the retained events.
* Anonymous aggregates keyed by item or category keep what forgotten users added; a user who comes back
  is another user to them: they equal the SQL over every event with each incarnation as its own user.
"""

from __future__ import annotations

import functools
from typing import Any

import duckdb
import pytest

from conformance.test_extension_views_sql import (
    CROSS_COLUMNS,
    CROSS_KEYS,
    CROSS_SQL,
    DRIFT_COLUMNS,
    DRIFT_KEYS,
    DRIFT_SQL,
)
from freshrec.config import load_settings
from freshrec.engine import Engine
from support import (
    VIEW_COLUMNS,
    arrival,
    build_reference,
    dataset,
    engine_for,
    eventgen,
    expected_view,
    query,
    reference_db,
    row_differences,
    scalar,
)

DAY = 86_400.0
TTL_DAYS = 2.0
CHUNK = 100
USER_VIEWS = (
    "user_category_profile",
    "user_category_affinity",
    "user_brand_profile",
    "user_price_sensitivity",
    "user_recent_activity",
    "user_history",
    "user_items",
)
AGGREGATE_VIEWS = ("item_popularity", "content_trending", "co_visits", "also_bought")


@functools.cache
def churn() -> tuple[list[eventgen.Item], list[eventgen.EventDict]]:
    """300 users over five weeks: most have idle gaps longer than the TTL."""
    items, events = eventgen.generate(seed=5, n_users=300, n_events=6000)
    return items, eventgen.time_ordered(events)


@functools.cache
def incarnations() -> dict[str, tuple[int, bool]]:
    """``event_id -> (incarnation, retained)``, from the arrival order and the TTL rule, in SQL."""
    _, arrived = churn()
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE arrivals(seq INTEGER, event_id VARCHAR, user_id VARCHAR, ts DOUBLE)")
    con.executemany(
        "INSERT INTO arrivals VALUES (?, ?, ?, ?)",
        [(n, e["event_id"], e["user_id"], e["timestamp"]) for n, e in enumerate(arrived)],
    )
    ttl = TTL_DAYS * DAY
    rows = query(
        con,
        f"""
        WITH first AS (  -- a re-sent event_id is applied where it first arrives
            SELECT event_id, any_value(user_id) AS user_id, any_value(ts) AS ts, min(seq) // {CHUNK} AS chunk
            FROM arrivals GROUP BY event_id
        ), chunks AS (SELECT DISTINCT seq // {CHUNK} AS chunk FROM arrivals),
        clock AS (  -- the engine clock after each chunk: the largest timestamp applied so far
            SELECT c.chunk, (SELECT max(ts) FROM first f WHERE f.chunk <= c.chunk) AS now FROM chunks c
        ), ordered AS (
            SELECT f.*, lag(ts) OVER w AS prev_ts, lag(chunk) OVER w AS prev_chunk
            FROM first f WINDOW w AS (PARTITION BY user_id ORDER BY ts, event_id)
        ), gaps AS (
            SELECT o.*,
                   CASE WHEN o.prev_chunk < o.chunk
                             AND (SELECT now FROM clock WHERE clock.chunk = o.chunk - 1) - {ttl} > o.prev_ts
                        THEN 1 ELSE 0 END AS forgotten_before
            FROM ordered o
        ), numbered AS (
            SELECT *, sum(forgotten_before) OVER (PARTITION BY user_id ORDER BY ts, event_id) AS incarnation
            FROM gaps
        ), last AS (
            SELECT user_id, max(incarnation) AS incarnation, max_by(ts, (incarnation, ts)) AS newest
            FROM numbered GROUP BY user_id
        )
        SELECT n.event_id, n.incarnation,
               n.incarnation = l.incarnation
               AND l.newest >= (SELECT max(now) FROM clock) - {ttl} AS retained
        FROM numbered n JOIN last l USING (user_id)
        """,
    )
    return {r["event_id"]: (int(r["incarnation"]), bool(r["retained"])) for r in rows}


@functools.cache
def retained_reference() -> duckdb.DuckDBPyConnection:
    items, arrived = churn()
    kept = incarnations()
    return build_reference(items, [e for e in arrived if kept[e["event_id"]][1]])


@functools.cache
def aggregate_reference() -> duckdb.DuckDBPyConnection:
    """Every event, each user's incarnation as its own user."""
    items, arrived = churn()
    kept = incarnations()
    renamed = [{**e, "user_id": f"{e['user_id']}#{kept[e['event_id']][0]}"} for e in arrived]
    return build_reference(items, renamed)


@functools.cache
def bounded_engine() -> Engine:
    items, arrived = churn()
    settings = load_settings(
        clock="event",
        embeddings={"model": "none"},
        retention={"user_ttl_days": TTL_DAYS, "sweep_every_seconds": 0},
    )
    engine = Engine.in_memory(settings)
    engine.upsert_items(items)
    for chunk in eventgen.chunks(arrived, CHUNK):
        engine.ingest(chunk)
    return engine


def test_the_stream_forgets_and_brings_back_users() -> None:
    kept = incarnations()
    users = {e["user_id"] for e in churn()[1]}
    returned = {e["user_id"] for e in churn()[1] if kept[e["event_id"]][0] > 0}
    dropped = sum(not retained for _, retained in kept.values())
    assert len(returned) > 30, "users should come back after being forgotten"
    assert dropped > len(kept) // 5, "a good part of the events should belong to forgotten incarnations"
    held = scalar(retained_reference(), "SELECT count(DISTINCT user_id) FROM events")
    assert 0 < held < len(users)


def test_clock_and_users_held() -> None:
    engine = bounded_engine()
    con = retained_reference()
    assert engine.now() == scalar(con, "SELECT now FROM clock")
    held = scalar(con, "SELECT count(DISTINCT user_id) FROM events")
    stats = engine.stats()
    assert stats["users"] == held
    forgotten = scalar(aggregate_reference(), "SELECT count(DISTINCT user_id) FROM events") - held
    assert stats["users_evicted"]["ttl"] == forgotten


@pytest.mark.parametrize("view", USER_VIEWS)
def test_user_views_equal_sql_over_the_retained_events(view: str) -> None:
    keys, columns = VIEW_COLUMNS[view]
    expected = query(retained_reference(), f"SELECT * FROM v_{view}")
    problems = row_differences(expected, bounded_engine().view_rows(view), keys, columns)
    assert not problems, f"{view}: " + "\n".join(problems)


def test_tier_drift_equals_sql_over_the_retained_events() -> None:
    expected = query(retained_reference(), DRIFT_SQL)
    actual = bounded_engine().view_rows("user_price_tier_drift")
    problems = row_differences(expected, actual, DRIFT_KEYS, DRIFT_COLUMNS)
    assert not problems, "\n".join(problems)


def test_purchases_and_profiles_of_forgotten_users_are_empty() -> None:
    engine = bounded_engine()
    con = retained_reference()
    bought: dict[str, set[str]] = {}
    for row in query(con, "SELECT user_id, item_id FROM events WHERE type = 'purchase'"):
        bought.setdefault(row["user_id"], set()).add(row["item_id"])
    held = {r["user_id"] for r in query(con, "SELECT DISTINCT user_id FROM events")}
    users = {e["user_id"] for e in churn()[1]}
    for user in sorted(users):
        assert set(engine.purchased_items(user)) == bought.get(user, set()), user
        profile = engine.profile(user)
        assert profile["known"] == (user in held), user
        if user not in held:
            assert not profile["top_categories"] and not profile["recent_items"], user
            interest = engine.view_rows("user_interest", user)
            assert interest == [{"user_id": user, "count": 0, "centroid": None}]


@pytest.mark.parametrize("view", AGGREGATE_VIEWS)
def test_aggregates_keep_what_forgotten_users_added(view: str) -> None:
    keys, columns = VIEW_COLUMNS[view]
    expected = query(aggregate_reference(), f"SELECT * FROM v_{view}")
    problems = row_differences(expected, bounded_engine().view_rows(view), keys, columns)
    assert not problems, f"{view}: " + "\n".join(problems)


def test_cross_category_counts_each_incarnation_as_a_buyer() -> None:
    expected = query(aggregate_reference(), CROSS_SQL)
    actual = bounded_engine().view_rows("category_cross_affinity")
    problems = row_differences(expected, actual, CROSS_KEYS, CROSS_COLUMNS)
    assert not problems, "\n".join(problems)


def test_also_bought_differs_from_never_forgetting() -> None:
    # the comparison above can fail: forgetting changes distinct counts on this stream
    full = build_reference(*churn())
    renamed = aggregate_reference()
    assert query(full, "SELECT sum(users) AS n FROM v_also_bought") != query(
        renamed, "SELECT sum(users) AS n FROM v_also_bought"
    )


def test_snapshot_of_a_bounded_engine_restores_and_goes_on_the_same() -> None:
    items, arrived = churn()
    settings = bounded_engine().settings
    first, second = Engine.in_memory(settings), Engine.in_memory(settings)
    first.upsert_items(items)
    parts = eventgen.chunks(arrived, CHUNK)
    half = len(parts) // 2
    for chunk in parts[:half]:
        first.ingest(chunk)
    second.restore(first.snapshot())
    for chunk in parts[half:]:
        first.ingest(chunk)
        second.ingest(chunk)
    for view in (*USER_VIEWS, *AGGREGATE_VIEWS):
        keys, columns = VIEW_COLUMNS[view]
        expected: list[dict[str, Any]] = query(
            retained_reference() if view in USER_VIEWS else aggregate_reference(), f"SELECT * FROM v_{view}"
        )
        for engine in (first, second):
            problems = row_differences(expected, engine.view_rows(view), keys, columns)
            assert not problems, f"{view}: " + "\n".join(problems)


def test_a_deleted_items_state_is_freed() -> None:
    items, _ = dataset("default")
    con = reference_db("default")
    # the catalog item in the most co-visit and also-bought pairs
    deleted = scalar(
        con,
        """
        SELECT item_id FROM (
            SELECT before_item AS item_id FROM v_co_visits UNION ALL SELECT after_item FROM v_co_visits
            UNION ALL SELECT item_id FROM v_also_bought
        ) JOIN items USING (item_id) GROUP BY item_id ORDER BY count(*) DESC, item_id LIMIT 1
        """,
    )
    engine = Engine.in_memory(engine_for("default", "time").settings)
    engine.upsert_items(items)
    for chunk in eventgen.chunks(arrival("default", "time"), 500):
        engine.ingest(chunk)
    before = sum(len(engine.view_rows(v)) for v in AGGREGATE_VIEWS)
    assert engine.delete_item(deleted)
    after = sum(len(engine.view_rows(v)) for v in AGGREGATE_VIEWS)
    assert after < before - 20
    for view, columns in (
        ("co_visits", ("before_item", "after_item")),
        ("also_bought", ("item_id", "other_item_id")),
        ("item_popularity", ("item_id",)),
        ("content_trending", ("item_id",)),
    ):
        keys, values = VIEW_COLUMNS[view]
        others = " AND ".join(f"{c} <> ?" for c in columns)
        expected = query(con, f"SELECT * FROM v_{view} WHERE {others}", [deleted] * len(columns))
        problems = row_differences(expected, engine.view_rows(view), keys, values)
        assert not problems, f"{view}: " + "\n".join(problems)
    for view in USER_VIEWS:  # what users did with the item is their history: it stays
        keys, values = VIEW_COLUMNS[view]
        problems = row_differences(expected_view("default", view), engine.view_rows(view), keys, values)
        assert not problems, f"{view}: " + "\n".join(problems)
