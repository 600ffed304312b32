"""Limits: the token bucket, the query-string limit, and every limit answered through the real app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from freshrec.api import create_app
from freshrec.api.limits import RateLimiter, check_query
from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.errors import InvalidInput


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.check("a") for _ in range(3)] == [None, None, None]
    wait = limiter.check("a")
    assert wait == pytest.approx(0.5)  # one token comes back every 1/2 s
    assert limiter.check("b") is None  # another client has its own bucket
    clock.now += 0.5
    assert limiter.check("a") is None
    assert limiter.check("a") == pytest.approx(0.5)
    clock.now += 100.0  # a long pause refills to the burst, no more
    assert [limiter.check("a") for _ in range(4)][:3] == [None, None, None]
    assert limiter.check("a") is not None


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.check("a") is None
    for _ in range(10):  # hammering while empty does not push the next token further away
        assert limiter.check("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.check("a") is None


def test_the_buckets_stay_bounded_and_idle_clients_go_first() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, capacity=4, clock=clock)
    for who in "abc":
        limiter.check(who)
    limiter.check("d")
    limiter.check("d")
    limiter.check("d")  # d is empty
    clock.now += 1.0  # a, b, c are full again; d is not
    limiter.check("e")
    assert len(limiter) == 2
    # d was kept with its one token: one more request passes, the next does not (a forgotten d would
    # have had a fresh burst of two)
    assert limiter.check("d") is None
    assert limiter.check("d") is not None
    for i in range(100):  # none idle: the oldest half is dropped, never more than the capacity
        limiter.check(f"x{i}")
        assert len(limiter) <= 4


def test_the_query_string_limit() -> None:
    check_query(b"k=1", 10)
    check_query(b"x" * 10, 10)
    with pytest.raises(InvalidInput) as refused:
        check_query(b"x" * 11, 10)
    assert refused.value.status == 414
    assert "max_query_bytes" in refused.value.error


def run(scenario: Callable[[httpx.AsyncClient, Engine], Awaitable[None]], **settings: Any) -> None:
    engine = Engine(load_settings(embeddings={"model": "none"}, cf={"enabled": False}, **settings))
    engine.upsert_items([{"item_id": "a", "category": "books"}])

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine), client=("10.0.0.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            await scenario(client, engine)

    asyncio.run(main())


def test_429_with_retry_after_per_key_and_per_address() -> None:
    limits = {"rate_per_second": 0.01, "rate_burst": 2}
    keys = {"read_key": "r-secret", "write_key": "w-secret"}

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        read = {"authorization": "Bearer r-secret"}
        assert [(await client.get("/v1/trending", headers=read)).status_code for _ in range(2)] == [200, 200]
        refused = await client.get("/v1/trending", headers=read)
        assert refused.status_code == 429
        # one token comes back in 100 s at 0.01/s (less the time the requests took)
        assert 90 <= int(refused.headers["retry-after"]) <= 100
        assert "this API key" in refused.json()["error"]
        # the write key has its own bucket; requests without a valid key share the address's
        write = {"x-api-key": "w-secret"}
        assert (await client.get("/v1/trending", headers=write)).status_code == 200
        assert (await client.get("/v1/trending")).status_code == 401
        assert (await client.get("/v1/trending", headers={"x-api-key": "guess"})).status_code == 401
        guessing = await client.get("/v1/trending", headers={"x-api-key": "guess-2"})
        assert guessing.status_code == 429  # guessing keys is rate limited too
        assert "client address" in guessing.json()["error"]
        # /health stays open and unlimited
        assert all([(await client.get("/health")).status_code == 200 for _ in range(5)])
        # a refused write stores nothing
        event = {"user_id": "u", "item_id": "a", "type": "click"}
        assert (await client.post("/v1/events", json=event, headers=write)).status_code == 202
        assert (await client.post("/v1/events", json=event, headers=write)).status_code == 429
        assert engine.applied_events == 1

    run(scenario, server={"limits": limits, **keys})


def test_graphql_counts_in_the_same_buckets() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        query = {"query": '{ Recommendation(url: "a") { recommendation } }'}
        assert (await client.post("/graphql", json=query)).status_code == 200
        refused = await client.post("/graphql", json=query)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1

    run(scenario, server={"limits": {"rate_per_second": 0.01, "rate_burst": 1}})


def test_query_string_items_batch_and_body_limits_through_the_app() -> None:
    limits = {
        "max_query_bytes": 256,
        "max_items_batch": 2,
        "max_items_body_bytes": 2048,
        "max_graphql_bytes": 1024,
    }

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        long = await client.get("/v1/trending", params={"category": "x" * 300})
        assert long.status_code == 414
        assert "max_query_bytes" in long.json()["error"]
        items = [{"item_id": f"i{n}"} for n in range(3)]
        assert (await client.post("/v1/items", json=items)).status_code == 413
        big = await client.put("/v1/items/b", json={"title": "t" * 3000})
        assert big.status_code == 413
        assert engine.catalog.get("b") is None and engine.catalog.get("i0") is None
        query = '{ Recommendation(url: "a") { recommendation } }' + " " * 2000
        assert (await client.post("/graphql", json={"query": query})).status_code == 413
        too_many_k = await client.get("/v1/trending", params={"k": 501})
        assert too_many_k.status_code == 422
        assert "k must be between 1 and 500" in too_many_k.json()["error"]

    run(scenario, server={"limits": limits})


def test_the_openapi_document_lists_the_limits() -> None:
    app = create_app(Engine(load_settings(embeddings={"model": "none"}, cf={"enabled": False})))
    document = app.openapi()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path == "/health":
                continue
            responses = operation["responses"]
            assert {"401", "403", "413", "414", "429"} <= set(responses), (method, path)
            assert "Retry-After" in responses["429"]["headers"]
            assert "rate_per_second" in responses["429"]["description"]
    trending = document["paths"]["/v1/trending"]["get"]
    assert trending["x-freshrec-role"] == "read"
    assert "security" not in trending  # no keys configured: open
