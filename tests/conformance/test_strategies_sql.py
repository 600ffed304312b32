"""The top-20 of the scoring strategies of SPEC §4 equals a full scan of the catalog in SQL (DuckDB).

Scores come from the reference views (SQL of SPEC §3, see ``support``) joined with the item attributes of
``recommendable`` (the catalog plus items seen only in events, see ``support``); filters: in stock only,
the user's purchased items excluded (unless ``exclude_purchased=False``),
optional category; order: ``round(score, 9)`` desc, then lifetime weighted popularity desc, then item_id asc.

- personalized(u, i) = 0.4·affinity_score(u, cat(i)) + 0.3·brand_affinity(u, brand(i))
  + 30·conversion_rate(u, tier(price(i))), a missing part (or a null conversion rate) counting 0;
- session(u, i) = 0.4·personalized(u, i) + 0.6·Σ recent_interactions(u, cat(i)) over the recent 1-h windows;
- trending_for_you(u, i) = 0.4·T(i) + 0.6·affinity_score of user_category_affinity(u, cat(i)) in the current
  7-day window;
- trending(i) = T(i), or popularity when the current trending window holds no event at all;

where T(i) is the trending_score of ``i`` in the current hopping window: the one ending at the first multiple
of 900 s strictly after now.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.ranking import trending as trending_strategy
from support import (
    DATASETS,
    TREND_SIZE,
    TREND_SLIDE,
    WEEK,
    Row,
    dataset,
    engine_for,
    query,
    reference_db,
    same_value,
)

K = 20
STRATEGIES = ("personalized", "session", "trending_for_you", "trending")
#: The strategies are checked on two arrival orders (the views tests cover all three).
ORDERS = ("late", "shuffled")
#: A catalog category, a second one, and one that only items seen in events (outside the catalog) have.
CATEGORIES = ("electronics", "toys", "garden")
UNKNOWN_USER = "nobody-at-all"

_SCORE_SQL = {
    "personalized": "personalized",
    "session": "0.4::DOUBLE * personalized + 0.6::DOUBLE * recent",
    "trending_for_you": "0.4::DOUBLE * trend + 0.6::DOUBLE * week_affinity",
    "trending": "CASE WHEN (SELECT count(*) FROM cur_trend) = 0 THEN pop ELSE trend END",
}

_RANKED_SQL = """
WITH params AS (
    SELECT floor(now / {week}) * {week} AS week_start,
           floor(now / {slide}) * {slide} + {slide} AS trend_end
    FROM clock
), cur_trend AS (
    SELECT item_id, trending_score::DOUBLE AS trending_score
    FROM v_content_trending WHERE window_end = (SELECT trend_end FROM params)
), catalog AS (
    SELECT i.item_id, i.category, i.brand, i.in_stock,
           CASE WHEN i.price IS NULL THEN NULL
                WHEN i.price < 25 THEN 'budget' WHEN i.price < 100 THEN 'mid-range'
                WHEN i.price < 500 THEN 'premium' ELSE 'luxury' END AS price_tier,
           coalesce(p.weighted_total, 0.0) AS pop,
           coalesce(t.trending_score, 0.0) AS trend
    FROM recommendable i
    LEFT JOIN v_item_popularity p USING (item_id)
    LEFT JOIN cur_trend t USING (item_id)
), users AS (
    SELECT unnest(?::VARCHAR[]) AS user_id
), recent AS (
    SELECT user_id, category, sum(recent_interactions)::DOUBLE AS recent
    FROM v_user_recent_activity GROUP BY user_id, category
), week AS (
    SELECT user_id, category, affinity_score::DOUBLE AS week_affinity
    FROM v_user_category_affinity WHERE window_start = (SELECT week_start FROM params)
), parts AS (
    SELECT u.user_id, c.item_id, c.category, c.in_stock, c.pop, c.trend,
           0.4::DOUBLE * coalesce(ucp.affinity_score, 0.0)
             + 0.3::DOUBLE * coalesce(ubp.brand_affinity, 0.0)
             + 30.0::DOUBLE * coalesce(ups.conversion_rate, 0.0) AS personalized,
           coalesce(r.recent, 0.0) AS recent,
           coalesce(w.week_affinity, 0.0) AS week_affinity
    FROM users u CROSS JOIN catalog c
    LEFT JOIN v_user_category_profile ucp ON ucp.user_id = u.user_id AND ucp.category = c.category
    LEFT JOIN v_user_brand_profile ubp ON ubp.user_id = u.user_id AND ubp.brand = c.brand
    LEFT JOIN v_user_price_sensitivity ups ON ups.user_id = u.user_id AND ups.price_tier = c.price_tier
    LEFT JOIN recent r ON r.user_id = u.user_id AND r.category = c.category
    LEFT JOIN week w ON w.user_id = u.user_id AND w.category = c.category
), scored AS (
    SELECT user_id, item_id, pop, ({score}) AS score
    FROM parts
    WHERE in_stock
      AND (? IS NULL OR category = ?)
      AND (NOT ? OR item_id NOT IN (
            SELECT e.item_id FROM events e WHERE e.user_id = parts.user_id AND e.type = 'purchase'))
)
SELECT user_id, item_id, score FROM scored
QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY round(score, 9) DESC, pop DESC, item_id ASC) <= {k}
ORDER BY user_id, round(score, 9) DESC, pop DESC, item_id ASC
"""


def expected_top(
    name: str,
    strategy: str,
    users: list[str],
    *,
    category: str | None = None,
    exclude_purchased: bool = True,
    k: int = K,
) -> dict[str, list[tuple[str, float]]]:
    """user -> [(item_id, score)] in rank order, computed by DuckDB."""
    sql = _RANKED_SQL.format(week=WEEK, slide=TREND_SLIDE, score=_SCORE_SQL[strategy], k=k)
    rows = query(reference_db(name), sql, [users, category, category, exclude_purchased])
    out: dict[str, list[tuple[str, float]]] = {u: [] for u in users}
    for row in rows:
        out[row["user_id"]].append((row["item_id"], float(row["score"])))
    return out


def users_of(name: str) -> list[str]:
    return [r["user_id"] for r in query(reference_db(name), "SELECT DISTINCT user_id FROM events ORDER BY 1")]


def _got(engine: Engine, user: str, strategy: str, **kwargs: Any) -> list[tuple[str, float]]:
    return [(r.item_id, float(r.score)) for r in engine.recommend(user, strategy=strategy, k=K, **kwargs)]


def _differences(
    name: str, expected: dict[str, list[tuple[str, float]]], got: dict[str, list[tuple[str, float]]]
) -> list[str]:
    problems: list[str] = []
    for user, want in expected.items():
        have = got[user]
        same_ids = [i for i, _ in want] == [i for i, _ in have]
        if same_ids and all(same_value(a, b) for (_, a), (_, b) in zip(want, have, strict=True)):
            continue
        first = next(
            (
                n
                for n, (w, h) in enumerate(zip(want, have, strict=False))
                if w[0] != h[0] or not same_value(w[1], h[1])
            ),
            min(len(want), len(have)),
        )
        problems.append(
            f"user {user}: first difference at rank {first}: expected {want[first : first + 3]} "
            f"got {have[first : first + 3]} (lengths {len(want)} / {len(have)})"
        )
    return problems


def _report(problems: list[str], total: int, limit: int = 8) -> str:
    shown = problems[:limit]
    more = [f"... and {len(problems) - limit} more"] if len(problems) > limit else []
    count = sum(p.startswith("user ") for p in problems)
    return f"{count} of {total} rankings differ:\n" + "\n".join([*shown, *more])


STRATEGY_CASES = [
    pytest.param(name, order, strategy, id=f"{name}-{order}-{strategy}")
    for name in DATASETS
    for order in ORDERS
    for strategy in STRATEGIES
]


@pytest.mark.parametrize(("name", "order", "strategy"), STRATEGY_CASES)
def test_strategy_top20_equals_sql(name: str, order: str, strategy: str) -> None:
    """Every user (and one without any event), default filters."""
    engine = engine_for(name, order)
    users = [*users_of(name), UNKNOWN_USER]
    if strategy == "trending":
        # Trending is for anyone: compare without the purchased filter (its default filter is tested below).
        expected = expected_top(name, strategy, users, exclude_purchased=False)
        got = {u: _got(engine, u, strategy, exclude_purchased=False) for u in users}
    else:
        expected = expected_top(name, strategy, users)
        got = {u: _got(engine, u, strategy) for u in users}
    problems = _differences(name, expected, got)
    assert not problems, f"{strategy} ({name}, {order}): " + _report(problems, len(users))


@pytest.mark.parametrize(("name", "order", "strategy"), STRATEGY_CASES)
@pytest.mark.parametrize("category", CATEGORIES)
def test_strategy_category_filter_equals_sql(name: str, order: str, strategy: str, category: str) -> None:
    engine = engine_for(name, order)
    users = [*users_of(name)[::3], UNKNOWN_USER]
    exclude = strategy != "trending"
    expected = expected_top(name, strategy, users, category=category, exclude_purchased=exclude)
    got = {u: _got(engine, u, strategy, category=category, exclude_purchased=exclude) for u in users}
    problems = _differences(name, expected, got)
    assert not problems, f"{strategy} category={category} ({name}, {order}): " + _report(problems, len(users))


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exclude_purchased_false_equals_sql(name: str, strategy: str) -> None:
    engine = engine_for(name, "late")
    users = users_of(name)[:6]
    expected = expected_top(name, strategy, users, exclude_purchased=False)
    got = {u: _got(engine, u, strategy, exclude_purchased=False) for u in users}
    problems = _differences(name, expected, got)
    assert not problems, f"{strategy} exclude_purchased=False ({name}): " + _report(problems, len(users))


@pytest.mark.parametrize("name", list(DATASETS))
def test_trending_default_filter_excludes_purchased(name: str) -> None:
    """SPEC §4: the default filters (in stock, not purchased) apply to every strategy, trending included."""
    engine = engine_for(name, "late")
    users = users_of(name)
    expected = expected_top(name, "trending", users, exclude_purchased=True)
    got = {u: _got(engine, u, "trending") for u in users}
    problems = _differences(name, expected, got)
    assert not problems, f"trending with default filters ({name}): " + _report(problems, len(users))


def test_trending_falls_back_to_popularity_when_the_window_is_empty() -> None:
    """With the wall clock, the current window (ending after the wall time) holds none of the old events."""
    name = "default"
    items, events = dataset(name)
    unique = list({e["event_id"]: e for e in events}.values())
    engine = Engine.in_memory(load_settings(clock="wall", embeddings={"model": "none"}))
    engine.upsert_items(items)
    for start in range(0, len(unique), 500):
        engine.ingest(unique[start : start + 500])
    con = reference_db(name)
    rows: list[Row] = query(
        con,
        """
        SELECT i.item_id, coalesce(p.weighted_total, 0.0) AS pop
        FROM recommendable i LEFT JOIN v_item_popularity p USING (item_id)
        WHERE i.in_stock
        ORDER BY round(pop, 9) DESC, pop DESC, i.item_id ASC
        LIMIT ?
        """,
        [K],
    )
    expected = [(r["item_id"], float(r["pop"])) for r in rows]
    got = _got(engine, UNKNOWN_USER, "trending")
    assert [i for i, _ in got] == [i for i, _ in expected], f"expected {expected}\ngot {got}"
    assert all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for (_, a), (_, b) in zip(expected, got, strict=True)
    )


def test_current_trending_window_is_the_next_slide_boundary() -> None:
    """The reference's own arithmetic: first multiple of 900 strictly after now, 2 h long."""
    for now, end in ((1_734_566_400.0, 1_734_567_300.0), (1_734_567_890.125, 1_734_568_200.0)):
        assert math.floor(now / TREND_SLIDE) * TREND_SLIDE + TREND_SLIDE == end
        assert end - TREND_SIZE <= now < end


@pytest.mark.parametrize("name", list(DATASETS))
def test_trending_for_you_global_walk_equals_sql(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With many categories, trending_for_you walks the global ranking instead of one per category."""
    monkeypatch.setattr(trending_strategy, "PER_CATEGORY_WALKS", 0)
    engine = engine_for(name, "late")
    users = [*users_of(name), UNKNOWN_USER]
    expected = expected_top(name, "trending_for_you", users)
    got = {u: _got(engine, u, "trending_for_you") for u in users}
    problems = _differences(name, expected, got)
    assert not problems, f"trending_for_you, global walk ({name}): " + _report(problems, len(users))
