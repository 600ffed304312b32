"""On the real DataSQRL clickstream, ``Recommendation(url)`` equals the example's co-visit query in DuckDB.

The reference is the example's SQL: pairs of one user's clicks with ``before.event_time < after.event_time
AND before.event_time >= after.event_time - INTERVAL 10 MINUTE``, grouped by (before, after) and counted;
ordered by frequency desc, then (SPEC §4) lifetime weighted popularity desc, then url asc.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import Any

import duckdb
import httpx
import pytest

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.datasets.files import read_records
from freshrec.engine import Engine
from shared_data import DATASQRL, needs, path_of

DATA = path_of(DATASQRL)
CLICKS = DATA / "clickstream.json.gz"
CLICK_WEIGHT = 3.0


@functools.cache
def expected() -> dict[str, list[tuple[str, int]]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE clicks AS SELECT * FROM read_json_auto(?)", [str(CLICKS)])
    rows = con.execute(
        f"""
        WITH co AS (
            SELECT b.url AS url, a.url AS recommendation, count(1) AS frequency
            FROM clicks b JOIN clicks a ON b.userid = a.userid
                 AND b.event_time < a.event_time
                 AND b.event_time >= a.event_time - INTERVAL 10 MINUTE
            GROUP BY 1, 2
        ), pop AS (SELECT url, {CLICK_WEIGHT} * count(*) AS pop FROM clicks GROUP BY url)
        SELECT co.url, co.recommendation, co.frequency
        FROM co JOIN pop ON pop.url = co.recommendation
        ORDER BY co.url, co.frequency DESC, pop.pop DESC, co.recommendation ASC
        """
    ).fetchall()
    out: dict[str, list[tuple[str, int]]] = {}
    for url, recommendation, frequency in rows:
        out.setdefault(url, []).append((recommendation, int(frequency)))
    return out


def clicks(order: str) -> list[dict[str, Any]]:
    events = [record for _, record in read_records(CLICKS)]
    if order == "shuffled":
        random.Random(20240102).shuffle(events)
    return events


@functools.cache
def engine(order: str) -> Engine:
    # the shuffled stream is up to an hour out of order: allow that much lateness
    settings = load_settings(
        clock="event", embeddings={"model": "none"}, views={"co_visit_allowed_lateness_seconds": 7200}
    )
    built = Engine(settings)
    events = clicks(order)
    for start in range(0, len(events), 1000):
        built.ingest(events[start : start + 1000])
    return built


@needs(DATASQRL)
def test_the_data_is_the_documented_set() -> None:
    assert len(clicks("time")) == 19_855
    assert len(expected()) > 2000


@needs(DATASQRL)
@pytest.mark.parametrize("order", ["time", "shuffled"])
def test_recommendation_equals_the_example_query_for_every_url(order: str) -> None:
    built = engine(order)
    assert built.stats()["co_visit_late_events"] == 0
    want = expected()
    urls = {r["item_id"] for r in clicks("time")}
    differing = [url for url in sorted(urls) if built.co_visits_of(url, limit=10_000) != want.get(url, [])]
    assert not differing, f"{len(differing)} urls differ, e.g. {differing[:3]}"


@needs(DATASQRL)
def test_late_events_beyond_the_allowed_lateness_are_counted_not_guessed() -> None:
    settings = load_settings(clock="event", embeddings={"model": "none"})  # default lateness: 10 min
    built = Engine(settings)
    events = clicks("shuffled")
    for start in range(0, len(events), 1000):
        built.ingest(events[start : start + 1000])
    late = built.stats()["co_visit_late_events"]
    assert late > 0
    want = expected()
    total_pairs = sum(f for pairs in want.values() for _, f in pairs)
    got_pairs = sum(r["frequency"] for r in built.view_rows("co_visits"))
    assert got_pairs < total_pairs  # pairs of the dropped events are missing, never invented
    assert all(
        f <= dict(want.get(r["before_item"], [])).get(r["after_item"], 0)
        for r in built.view_rows("co_visits")
        for f in [r["frequency"]]
    )


@needs(DATASQRL)
def test_graphql_recommendation_answers_the_same() -> None:
    built = engine("time")
    want = expected()
    sample = sorted(want)[:: max(1, len(want) // 25)]
    query = (
        "query($url: String!, $limit: Int!) "
        "{ Recommendation(url: $url, limit: $limit) { recommendation frequency } }"
    )

    async def ask() -> list[list[tuple[str, int]]]:
        transport = httpx.ASGITransport(app=create_app(built))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = []
            for url in sample:
                response = await client.post(
                    "/graphql", json={"query": query, "variables": {"url": url, "limit": 10}}
                )
                body = response.json()
                assert "errors" not in body, body
                answers.append(
                    [(r["recommendation"], r["frequency"]) for r in body["data"]["Recommendation"]]
                )
            return answers

    for url, answer in zip(sample, asyncio.run(ask()), strict=True):
        assert answer == want[url][:10], url
