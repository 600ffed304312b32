"""The stream-library alternative of the benchmark (Pathway) maintains the same views as freshrec.

Both are fed the same events — the demo shop, with some events describing their item themselves (one of
an item missing from the catalog) and some a few minutes late — and every view Pathway maintains must
hold freshrec's rows, so the events/s compared are for the same work.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

from freshrec.bench.stream_alternative import VIEWS, VIEWS_MISSING, pathway_views, run_stream_alternative
from freshrec.config import Settings, load_settings
from freshrec.demo.scenario import generate_scenario
from freshrec.engine import Engine
from freshrec.events import validate_events

Row = dict[str, Any]
Keyed = dict[tuple[Any, ...], Row]  # a view's rows by its key

KEYS = {
    "user_category_profile": ("user_id", "category"),
    "user_category_affinity": ("user_id", "category", "window_start"),
    "user_brand_profile": ("user_id", "brand"),
    "user_price_sensitivity": ("user_id", "price_tier"),
    "user_recent_activity": ("user_id", "category", "window_start"),
    "content_trending": ("item_id", "window_start"),
    "item_popularity": ("item_id",),
    "co_visits": ("before_item", "after_item"),
    "also_bought": ("item_id", "other_item_id"),
    "user_items": ("user_id", "item_id"),
}


def workload() -> tuple[list[Row], list[Row]]:
    sc = generate_scenario(n_users=60, n_items=50, seed=7, duration_seconds=3 * 3600)
    events = [dict(e) for e in sc.events]
    rng = random.Random(11)
    categories = sorted({item["category"] for item in sc.items})
    for event in events[::40]:  # the event's own attributes describe the item for that event
        event.update(
            category=rng.choice(categories), brand="Eventbrand", price=rng.choice([9.5, 60.0, 900.0])
        )
    for n, event in enumerate(events[25::90]):
        event["item_id"] = "sku-not-in-catalog"
        event.update(category="outside", brand="Elsewhere", price=42.0)
        if n % 2:
            event["timestamp"] = float(event["timestamp"]) - rng.uniform(30, 300)  # a few minutes late
    return sc.items, events


@pytest.fixture(scope="module")
def views() -> tuple[dict[str, Keyed], dict[str, Keyed]]:
    """(freshrec's rows, Pathway's rows) of every view Pathway maintains, keyed by the view's key."""
    items, raw = workload()
    # no embeddings and no CF: neither touches the views compared here
    settings = load_settings(clock="event", embeddings={"model": "none"}, cf={"enabled": False})
    events = [
        event
        for start in range(0, len(raw), 1000)
        for event in validate_events(raw[start : start + 1000], settings.events, received_at=time.time())
    ]
    engine = Engine(settings)
    engine.upsert_items(items)
    for start in range(0, len(events), 1000):
        engine.ingest_events(events[start : start + 1000])
    run = pathway_views(items, events, settings, collect=True)

    now = engine.now()
    freshrec = {name: keyed(name, engine.view_rows(name)) for name in VIEWS}
    pathway = {name: as_of(name, keyed(name, rows), now, settings) for name, rows in run.rows.items()}
    return freshrec, pathway


def keyed(name: str, rows: list[Row]) -> Keyed:
    out = {tuple(row[field] for field in KEYS[name]): row for row in rows}
    assert len(out) == len(rows), f"{name}: two rows with one key"
    return out


def as_of(name: str, rows: Keyed, now: float, settings: Settings) -> Keyed:
    """Pathway's rows read as freshrec reads its state at ``now``: decayed to now, retained windows only."""
    v = settings.views
    if name == "user_category_profile":
        half_life = v.decay_half_life_seconds
        for row in rows.values():
            at_last = row.pop("decayed_affinity_at_last")
            row["decayed_affinity"] = at_last * 2.0 ** (-(now - row["last_engaged_at"]) / half_life)
    if name == "user_recent_activity":  # recent: window_end >= now - 3 h
        return {k: r for k, r in rows.items() if r["window_end"] >= now - v.activity_horizon_seconds}
    if name == "content_trending":  # windows closed at most the retention ago
        kept_from = now - v.trending_retention_seconds - v.trending_window_seconds
        return {k: r for k, r in rows.items() if r["window_start"] >= kept_from}
    return rows


def assert_same_rows(name: str, expected: Keyed, got: Keyed) -> None:
    assert expected, f"{name}: the workload gives freshrec no rows to compare"
    assert sorted(got) == sorted(expected), f"{name}: different keys"
    for key, row in expected.items():
        other = got[key]
        assert sorted(other) == sorted(row), f"{name}: different columns"
        for column, value in row.items():
            if isinstance(value, float) and not isinstance(other[column], str):
                assert math.isclose(other[column], value, rel_tol=1e-9, abs_tol=1e-9), (name, key, column)
            else:
                assert other[column] == value, (name, key, column, other[column], value)


@pytest.mark.parametrize("name", VIEWS)
def test_pathway_view_equals_freshrec(name: str, views: tuple[dict[str, Keyed], dict[str, Keyed]]) -> None:
    freshrec, pathway = views
    assert_same_rows(name, freshrec[name], pathway[name])


def test_run_stream_alternative_reports_every_figure() -> None:
    sc = generate_scenario(n_users=30, n_items=30, seed=2, duration_seconds=3600)
    lines: list[str] = []

    # the demo's items carry no vectors: the default (bench) settings expect them with the items
    settings = load_settings(clock="event", embeddings={"model": "none"})
    result = run_stream_alternative(sc.items, sc.events, progress=lines.append, settings=settings)

    assert result["library"] == "pathway"
    assert result["version"] == "0.33.0"
    assert result["threads"] == 1
    assert result["events"] == len(sc.events)
    figures = ("events_per_s", "seconds", "cpu_seconds", "freshrec_events_per_s", "freshrec_seconds")
    for figure in (*figures, "freshrec_cpu_seconds"):
        assert result[figure] > 0, figure
    assert result["ratio_freshrec_over_library"] == pytest.approx(
        result["freshrec_events_per_s"] / result["events_per_s"]
    )
    assert result["events_per_s"] == pytest.approx(result["events"] / result["seconds"])
    assert result["freshrec_events_per_s"] == pytest.approx(result["events"] / result["freshrec_seconds"])
    assert result["views"] == list(VIEWS)
    assert [line.split(":")[0] for line in result["views_missing"]] == list(VIEWS_MISSING)
    assert isinstance(result["input"], str)
    assert any("freshrec" in line for line in lines) and any("pathway" in line for line in lines)
