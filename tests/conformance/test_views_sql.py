"""Every feature view of SPEC §3 equals its SQL definition computed by DuckDB on the same events (SPEC §7).

The engine is fed the generated catalog, then the events in three arrival orders (time order, mostly time
order with late events and re-sends, fully shuffled), in chunks of 500, with the event clock. Whatever the
order, each view must equal, as a multiset of rows, the SQL over the de-duplicated events filtered by the
final "now" (windows only ever expire as "now" grows, so a late event of an expired window is simply not
visible).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from support import (
    DATASETS,
    ORDERS,
    VIEW_COLUMNS,
    dataset,
    engine_for,
    eventgen,
    expected_view,
    query,
    reference_db,
    row_differences,
    scalar,
)

CASES = [pytest.param(name, order, id=f"{name}-{order}") for name in DATASETS for order in ORDERS]


# ---------------------------------------------------------------------------------------------------------
# The generator itself: deterministic, valid, and covering what the views need.


def test_generator_is_deterministic() -> None:
    assert eventgen.generate(seed=3, n_events=500) == eventgen.generate(seed=3, n_events=500)
    assert eventgen.generate(seed=3, n_events=500) != eventgen.generate(seed=4, n_events=500)


@pytest.mark.parametrize("name", list(DATASETS))
def test_generated_data_covers_the_edge_cases(name: str) -> None:
    items, events = dataset(name)
    con = reference_db(name)
    now = scalar(con, "SELECT now FROM clock")
    assert max(e["timestamp"] for e in events) == now
    assert now < time.time()  # nothing in the future
    assert {e["type"] for e in events} == set(eventgen.EVENT_TYPES)
    # Re-sends are exact copies; the reference de-duplicates them.
    assert scalar(con, "SELECT count(*) FROM raw_events") > scalar(con, "SELECT count(*) FROM events")
    assert scalar(con, "SELECT count(*) FROM (SELECT DISTINCT * FROM raw_events)") == scalar(
        con, "SELECT count(DISTINCT event_id) FROM raw_events"
    )
    # Out of order arrival.
    stamps = [e["timestamp"] for e in events]
    assert sum(b < a for a, b in itertools.pairwise(stamps)) > len(events) // 20
    # Span of about five weeks, boundaries hit exactly, dense last hours.
    assert now - min(stamps) > 4.5 * eventgen.WEEK
    for size in (900.0, 3600.0, 604_800.0):
        assert any(ts % size == 0 for ts in stamps), size
    assert sum(ts > now - 3 * 3600 for ts in stamps) > len(stamps) // 10
    # Prices in every tier and on every bound; items without price/brand; out of stock items.
    prices = {i.get("price") for i in items}
    assert {25.0, 100.0, 500.0, None} <= prices
    assert {"budget", "mid-range", "premium", "luxury"} <= {
        r["price_tier"]
        for r in query(con, "SELECT DISTINCT price_tier FROM resolved WHERE price IS NOT NULL")
    }
    assert any("brand" not in i for i in items)
    assert 0.05 < sum(not i["in_stock"] for i in items) / len(items) < 0.2
    # Overrides and items outside the catalog, with and without a category.
    catalog = {i["item_id"]: i for i in items}
    assert any(e["item_id"] not in catalog and "category" in e for e in events)
    assert any(e["item_id"] not in catalog and "category" not in e for e in events)
    for field in ("category", "brand", "price"):
        assert any(
            e["item_id"] in catalog and field in e and e[field] != catalog[e["item_id"]].get(field)
            for e in events
        ), field
    assert any("dwell_seconds" in e for e in events)
    assert any("dwell_seconds" not in e for e in events)
    # Some users have more events than user_history keeps, and some of their timestamps tie.
    assert scalar(con, "SELECT max(n) FROM (SELECT count(*) AS n FROM events GROUP BY user_id)") > 200
    assert (
        scalar(con, "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY user_id, ts HAVING count(*) > 1)")
        > 0
    )
    # Some 7-day windows have expired, and windows sit exactly on the retention edges of the boundary set.
    assert scalar(con, "SELECT min(ts) FROM events") < scalar(
        con, "SELECT min(window_start) FROM v_user_category_affinity"
    )
    if name == "hour_boundary":
        assert scalar(
            con, "SELECT count(*) FROM v_user_recent_activity WHERE window_end = ?", [now - 3 * 3600]
        )
        assert scalar(con, "SELECT count(*) FROM v_content_trending WHERE window_end = ?", [now - 7200])


# ---------------------------------------------------------------------------------------------------------
# The engine against the reference.


@pytest.mark.parametrize(("name", "order"), CASES)
def test_clock_is_the_largest_event_time(name: str, order: str) -> None:
    engine = engine_for(name, order)
    assert engine.now() == scalar(reference_db(name), "SELECT now FROM clock")


@pytest.mark.parametrize(("name", "order"), CASES)
@pytest.mark.parametrize("view", list(VIEW_COLUMNS))
def test_view_equals_sql(name: str, order: str, view: str) -> None:
    engine = engine_for(name, order)
    keys, columns = VIEW_COLUMNS[view]
    expected = expected_view(name, view)
    actual: list[dict[str, Any]] = list(engine.view_rows(view))
    problems = row_differences(expected, actual, keys, columns)
    assert not problems, (
        f"{view} ({name}, {order} arrival): {len(expected)} expected rows, {len(actual)} engine rows\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize(("name", "order"), CASES)
def test_purchased_items_equal_sql(name: str, order: str) -> None:
    engine = engine_for(name, order)
    con = reference_db(name)
    expected: dict[str, set[str]] = {}
    for row in query(con, "SELECT user_id, item_id FROM events WHERE type = 'purchase'"):
        expected.setdefault(row["user_id"], set()).add(row["item_id"])
    users = [r["user_id"] for r in query(con, "SELECT DISTINCT user_id FROM events ORDER BY 1")]
    wrong = {
        u: (sorted(expected.get(u, set())), sorted(engine.purchased_items(u)))
        for u in [*users, "nobody"]
        if set(engine.purchased_items(u)) != expected.get(u, set())
    }
    assert not wrong, f"purchased_items (user: (expected, got)): {wrong}"


def test_float_tolerance_helper() -> None:
    # The comparison itself: tolerance on floats, None only equals None, ints equal floats.
    rows_a = [{"k": "a", "x": 1.0, "y": None}, {"k": "b", "x": 2, "y": 0.1 + 0.2}]
    rows_b = [{"k": "b", "x": 2.0, "y": 0.3}, {"k": "a", "x": 1.0 + 1e-12, "y": None}]
    assert row_differences(rows_a, rows_b, ["k"], ["x", "y"]) == []
    assert row_differences(rows_a, [{"k": "a", "x": 1.0, "y": 0.0}], ["k"], ["x", "y"])
