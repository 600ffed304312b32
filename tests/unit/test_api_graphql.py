"""GraphQL beside REST: the same metrics, id checks and quiet logs; SimilarContent's answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.engine import Engine

DIM = 64


def run(scenario: Callable[[httpx.AsyncClient, Engine], Awaitable[None]], **settings: Any) -> None:
    """``scenario`` against the real app; items carry their own vectors (no text model)."""
    settings = {"embeddings": {"model": f"precomputed:{DIM}"}, "cf": {"enabled": False}, **settings}
    engine = Engine(load_settings(**settings))

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            await scenario(client, engine)

    asyncio.run(main())


async def graphql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    return body


def click(user: str, url: str) -> str:
    return f'mutation {{ Clickstream(click: {{userid: "{user}", url: "{url}"}}) {{ eventId }} }}'


def metric(text: str, name: str) -> float:
    [value] = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


def test_metrics_count_events_from_graphql_as_from_rest() -> None:
    """The report: ``events_accepted_total`` 3 while ``/health`` said 4 applied."""

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        for n in range(3):
            assert "errors" not in await graphql(client, click("u1", f"page-{n}"))
        posted = await client.post("/v1/events", json={"user_id": "u1", "item_id": "page-0", "type": "view"})
        assert posted.status_code == 202
        refused = await graphql(client, click("", "page-0"))
        assert refused["errors"]

        text = (await client.get("/metrics")).text
        health = (await client.get("/health")).json()
        assert health["applied_events"] == 4
        assert metric(text, "freshrec_events_accepted_total") == 4
        assert metric(text, "freshrec_events_applied_total") == 4
        assert metric(text, "freshrec_events_rejected_requests_total") == 1

    run(scenario)


@pytest.mark.parametrize("user", ["", "u\x00", "u\nx", "u\x7f"])
def test_graphql_refuses_the_ids_rest_refuses(user: str) -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        mutation = 'mutation($u: String!) { Clickstream(click: {userid: $u, url: "page"}) { eventId } }'
        body = await graphql(client, mutation, u=user)
        assert body["data"] is None
        assert "user_id" in body["errors"][0]["message"]
        query = "query($u: String!) { SimilarContent(userid: $u) { url } }"
        assert "userid" in (await graphql(client, query, u=user))["errors"][0]["message"]
        assert engine.applied_events == 0

    run(scenario)


def test_a_refused_graphql_request_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        with caplog.at_level(logging.DEBUG):
            await graphql(client, click("", "page"))  # invalid input
            await graphql(client, "{ NoSuchQuery }")  # invalid document
        records = [r for r in caplog.records if r.name.startswith(("strawberry", "freshrec"))]
        assert len(records) == 2, [r.getMessage() for r in records]
        for record in records:
            assert record.exc_info is None
            assert record.levelno < logging.ERROR
            assert "\n" not in record.getMessage()
            assert "Traceback" not in caplog.text

    run(scenario)


def unit_vectors(n: int, seed: int = 1) -> list[list[float]]:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return [[float(x) for x in row] for row in rows]


def test_similarity_is_at_most_one() -> None:
    """A user who clicked one page is closest to it; float32 rounding once made that 1.0000001."""

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        vectors = unit_vectors(200)
        items = [{"item_id": f"p{n}", "title": f"Page {n}", "embedding": v} for n, v in enumerate(vectors)]
        assert (await client.post("/v1/items", json=items)).status_code == 200
        events = [{"user_id": f"u{n}", "item_id": f"p{n}", "type": "click"} for n in range(200)]
        assert (await client.post("/v1/events", json=events)).status_code == 202
        best = []
        for n in range(200):
            query = (
                f'{{ SimilarContent(userid: "u{n}", limit: 1, includeVisited: true) {{ url similarity }} }}'
            )
            [top] = (await graphql(client, query))["data"]["SimilarContent"]
            assert top["url"] == f"p{n}"
            best.append(top["similarity"])
        assert max(best) <= 1.0
        assert min(best) > 0.999999

    run(scenario)


def test_similar_content_leaves_out_the_pages_the_user_visited() -> None:
    """The report: SimilarContent returned the page just viewed (the DataSQRL SQL would keep it)."""

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        base = np.zeros(DIM, dtype=np.float32)
        base[0] = 1.0
        items = []
        for n in range(6):  # p0 .. p5, ever further from p0
            vector = base.copy()
            vector[1] = n * 0.3
            items.append({"item_id": f"p{n}", "embedding": [float(x) for x in vector]})
        assert (await client.post("/v1/items", json=items)).status_code == 200
        for page in ("p0", "p1"):
            assert "errors" not in await graphql(client, click("u1", page))

        query = '{ SimilarContent(userid: "u1", limit: 3) { url similarity } }'
        got = [r["url"] for r in (await graphql(client, query))["data"]["SimilarContent"]]
        assert got == ["p2", "p3", "p4"]
        query = '{ SimilarContent(userid: "u1", limit: 3, includeVisited: true) { url } }'
        got = [r["url"] for r in (await graphql(client, query))["data"]["SimilarContent"]]
        assert got[:2] == ["p1", "p0"] or got[:2] == ["p0", "p1"]
        assert len(got) == 3

    run(scenario)
