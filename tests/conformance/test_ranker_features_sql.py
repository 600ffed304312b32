"""The ranker's feature matrix equals an independent DuckDB computation of the same definitions.

Affinity shares, recent activity, price-tier conversion, popularity, co-visits with the user's last
items and the recency of the user's category are computed in SQL over the de-duplicated events (the
conformance reference database) and compared with the matrix the ranker builds for a set of candidates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from freshrec.ranking.candidates import SOURCES, Candidates
from freshrec.ranking.features import INDEX, build
from support import RECENT_HORIZON, engine_for, query, reference_db, scalar

USERS = 12
CANDIDATES = 150


def _share_sql(view: str, key: str, value: str) -> str:
    """``key -> value / sum(positive values)`` of one user in a reference view."""
    return f"""
        SELECT {key} AS k, {value} / sum(CASE WHEN {value} > 0 THEN {value} ELSE 0 END) OVER () AS v
        FROM v_{view} WHERE user_id = ?
    """


@pytest.mark.parametrize("order", ["time", "shuffled"])
def test_feature_matrix_equals_sql(order: str) -> None:
    engine = engine_for("default", order)
    con = reference_db("default")
    now = scalar(con, "SELECT now FROM clock")
    assert engine.now() == now
    users = [
        r["user_id"]
        for r in query(con, f"SELECT user_id FROM events GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {USERS}")
    ]
    items = [
        r["item_id"]
        for r in query(con, f"SELECT item_id FROM items ORDER BY hash(item_id) LIMIT {CANDIDATES}")
    ]
    catalog = {r["item_id"]: r for r in query(con, "SELECT item_id, category, brand, price FROM items")}
    popularity = {
        r["item_id"]: r["w"] for r in query(con, "SELECT item_id, sum(weight) AS w FROM resolved GROUP BY 1")
    }
    nan = np.full((len(SOURCES), len(items)), np.nan, dtype=np.float32)
    candidates = Candidates(items, nan, nan.copy())
    checked = 0
    for user in users:
        x = build(engine.feature_sources, user, now, candidates)
        category = {
            r["k"]: r["v"]
            for r in query(con, _share_sql("user_category_profile", "category", "affinity_score"), [user])
        }
        brand = {
            r["k"]: r["v"]
            for r in query(con, _share_sql("user_brand_profile", "brand", "brand_affinity"), [user])
        }
        recent = {
            r["category"]: r["n"]
            for r in query(
                con,
                "SELECT category, sum(recent_interactions) AS n FROM v_user_recent_activity "
                "WHERE user_id = ? AND window_end >= ? GROUP BY 1",
                [user, now - RECENT_HORIZON],
            )
        }
        conversion = {
            r["price_tier"]: r["conversion_rate"]
            for r in query(
                con,
                "SELECT price_tier, conversion_rate FROM v_user_price_sensitivity WHERE user_id = ?",
                [user],
            )
        }
        history = query(
            con,
            "SELECT item_id FROM v_user_history WHERE user_id = ? ORDER BY timestamp DESC, event_id DESC",
            [user],
        )
        last: list[str] = []
        for r in history:
            if r["item_id"] not in last:
                last.append(r["item_id"])
        last = last[:5]
        covisits = {
            (r["before_item"], r["after_item"]): r["frequency"]
            for r in query(con, "SELECT * FROM v_co_visits WHERE before_item IN (SELECT unnest(?))", [last])
        }
        last_seen = {
            r["category"]: r["ts"]
            for r in query(
                con,
                "SELECT i.category, max(h.timestamp) AS ts "
                "FROM v_user_history h JOIN items i USING (item_id) "
                "WHERE h.user_id = ? AND i.category IS NOT NULL GROUP BY 1",
                [user],
            )
        }
        for n, item in enumerate(items):
            c, b = catalog[item]["category"], catalog[item]["brand"]
            tier = _tier(catalog[item]["price"])
            expected = {
                "category_affinity": category.get(c, 0.0),
                "brand_affinity": brand.get(b, 0.0),
                "category_recent": recent.get(c, 0.0),
                "tier_conversion": math.nan if conversion.get(tier) is None else conversion[tier],
                "popularity": math.log1p(popularity.get(item, 0.0)),
                "covisit_last_items": sum(covisits.get((before, item), 0) for before in last),
                "covisit_last_item": covisits.get((last[0], item), 0) if last else math.nan,
                "category_last_seen": now - last_seen[c] if c in last_seen else math.nan,
            }
            for name, value in expected.items():
                got = float(x[n, INDEX[name]])
                assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(
                    value, rel=1e-5, abs=1e-6
                ), (
                    user,
                    item,
                    name,
                    got,
                    value,
                )
                checked += 1
    assert checked == USERS * CANDIDATES * 8


def _tier(price: float | None) -> str | None:
    if price is None:
        return None
    if price < 25:
        return "budget"
    if price < 100:
        return "mid-range"
    return "premium" if price < 500 else "luxury"
