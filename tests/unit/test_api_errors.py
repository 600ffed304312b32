"""API errors in-process (no server process): 4xx ``{"error", "details"}``, every problem, nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.engine import Engine

VALID: dict[str, Any] = {"user_id": "u1", "item_id": "a", "type": "purchase", "category": "books"}


def run(scenario: Callable[[httpx.AsyncClient, Engine], Awaitable[None]], **settings: Any) -> None:
    """Run ``scenario`` against a fresh in-memory engine behind the real app."""
    engine = Engine(load_settings(**settings))

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            await scenario(client, engine)

    asyncio.run(main())


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert all(set(d) == {"index", "field", "message"} for d in body["details"])
    return body


def problems(body: dict[str, Any]) -> set[tuple[int, str]]:
    return {(d["index"], d["field"]) for d in body["details"]}


def test_a_batch_lists_every_problem_and_stores_nothing() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        batch = [
            {**VALID, "type": "like"},
            VALID,
            {k: v for k, v in VALID.items() if k != "user_id"},
            {**VALID, "price": -1, "colour": "red"},
        ]
        body = error_of(await client.post("/v1/events", json=batch), 422)
        assert problems(body) == {(0, "type"), (2, "user_id"), (3, "price"), (3, "colour")}
        assert engine.applied_events == 0
        assert engine.view_rows("user_history", "u1") == []
        assert engine.view_rows("item_popularity", "a") == []

        ok = await client.post("/v1/events", json=[VALID])
        assert ok.status_code == 202, ok.text
        assert engine.applied_events == 1

    run(scenario)


def test_bodies_that_are_not_events() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        for raw in (b"", b"{", b"42", b"null", b'"event"', b"[]", b"[1]"):
            error_of(await client.post("/v1/events", content=raw), 422)
        assert engine.applied_events == 0

    run(scenario)


def test_wrong_json_types_are_rejected() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        for field, value in (
            ("user_id", 42),
            ("price", "12.5"),
            ("dwell_seconds", "5"),
            ("timestamp", True),
            ("timestamp", {"seconds": 1}),
        ):
            body = error_of(await client.post("/v1/events", json={**VALID, field: value}), 422)
            assert problems(body) == {(0, field)}, (field, value, body)
        assert engine.applied_events == 0

    run(scenario)


def test_limits_are_413() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        error_of(await client.post("/v1/events", json=[VALID, VALID, VALID]), 413)
        big = orjson.dumps([{**VALID, "properties": {"pad": "x" * 600}}] * 2)
        error_of(await client.post("/v1/events", content=big), 413)
        assert engine.applied_events == 0
        assert (await client.post("/v1/events", json=[VALID, VALID])).status_code == 202

    run(scenario, events={"max_batch": 2, "max_body_bytes": 1024})


def test_bad_reads_are_4xx_json() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        url = "/v1/users/u1/recommendations"
        for params in ({"strategy": "magic"}, {"k": 0}, {"k": 100_000}, {"k": "ten"}, {"explain": "maybe"}):
            error_of(await client.get(url, params=params), 422)
        error_of(await client.get("/v1/views/no_such_view"), 404)
        error_of(await client.get("/v1/views/item_popularity", params={"user_id": "u1"}), 422)
        error_of(await client.get("/v1/items/no-such-item"), 404)

    run(scenario)


def test_item_errors_store_nothing() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        item = {"item_id": "a", "category": "books", "price": 10.0}
        assert (await client.put("/v1/items/a", json=item)).status_code == 200
        stored = (await client.get("/v1/items/a")).json()

        error_of(await client.put("/v1/items/a", json={**item, "item_id": "b"}), 422)
        body = error_of(await client.put("/v1/items/a", json={**item, "price": -1, "in_stock": "maybe"}), 422)
        assert problems(body) == {(0, "price"), (0, "in_stock")}
        body = error_of(
            await client.post("/v1/items", json=[{"item_id": "c"}, {"item_id": "d", "x": 1}]), 422
        )
        assert problems(body) == {(1, "x")}

        assert (await client.get("/v1/items/a")).json() == stored
        error_of(await client.get("/v1/items/b"), 404)
        error_of(await client.get("/v1/items/c"), 404)

    run(scenario)


def test_read_and_write_keys_guard_reads_and_writes() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        path = "/v1/users/u1/recommendations"
        error_of(await client.get(path), 401)
        error_of(await client.get(path, headers={"authorization": "Bearer wrong"}), 401)
        assert (await client.get(path, headers={"authorization": "Bearer r"})).status_code == 200
        assert (await client.get(path, headers={"authorization": "Bearer w"})).status_code == 200
        event = {"user_id": "u1", "item_id": "a", "type": "view"}
        # a known key without the role: 403, not 401
        error_of(await client.post("/v1/events", json=event, headers={"authorization": "Bearer r"}), 403)
        posted = await client.post("/v1/events", json=event, headers={"authorization": "Bearer w"})
        assert posted.status_code == 202

    run(scenario, server={"read_key": "r", "write_key": "w"})
