"""What the REST API says about odd input: duplicates, ids in paths, huge invalid batches, future times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from freshrec.api import create_app
from freshrec.api.problems import MAX_DETAILS
from freshrec.config import load_settings
from freshrec.engine import Engine

EVENT: dict[str, Any] = {"event_id": "e1", "user_id": "u1", "item_id": "a", "type": "view"}


def run(scenario: Callable[[httpx.AsyncClient, Engine], Awaitable[None]], **settings: Any) -> None:
    engine = Engine(load_settings(embeddings={"model": "none"}, cf={"enabled": False}, **settings))

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            await scenario(client, engine)

    asyncio.run(main())


def test_a_resent_event_is_accepted_and_counted_as_a_duplicate() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        first = await client.post("/v1/events", json=EVENT)
        assert first.status_code == 202
        assert first.json() == {"accepted": 1, "duplicates": 0, "event_ids": ["e1"]}
        again = await client.post("/v1/events", json=[EVENT, {**EVENT, "event_id": "e2"}, EVENT])
        assert again.status_code == 202  # SPEC §1: re-sending still answers success
        assert again.json() == {"accepted": 3, "duplicates": 2, "event_ids": ["e1", "e2", "e1"]}
        assert engine.applied_events == 2

    run(scenario)


BAD_IDS = [("", "must not be empty"), ("u\x00x", "U+0000"), ("tab\there", "U+0009"), ("u\x9b", "U+009B")]


@pytest.mark.parametrize(("user", "problem"), BAD_IDS)
def test_an_id_events_refuse_is_refused_in_a_path_too(user: str, problem: str) -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        posted = await client.post("/v1/events", json={**EVENT, "user_id": user})
        assert posted.status_code == 422
        assert [d["field"] for d in posted.json()["details"]] == ["user_id"]
        path = quote(user, safe="")
        for url in (
            f"/v1/users/{path}/recommendations",
            f"/v1/users/{path}/profile",
            f"/v1/items/a/recommendations?user_id={path}",
        ):
            response = await client.get(url)
            assert response.status_code == 422, (url, response.text)
            assert response.json()["details"][0]["field"] == "user_id"
            assert problem in response.json()["details"][0]["message"]
        assert engine.applied_events == 0

    run(scenario)


@pytest.mark.parametrize("field", ["item_id", "session_id"])
def test_control_characters_in_other_ids_are_refused(field: str) -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        posted = await client.post("/v1/events", json={**EVENT, field: "x\x00"})
        assert posted.status_code == 422
        assert posted.json()["details"][0]["field"] == field
        item = quote("x\x01", safe="")
        assert (await client.put(f"/v1/items/{item}", json={"title": "x"})).status_code == 422
        assert (await client.get(f"/v1/items/{item}/recommendations")).status_code == 422

    run(scenario)


def test_an_invalid_batch_of_10000_events_answers_a_small_body() -> None:
    """The report: 899 KB of error details for one bad field in each of 10,000 events."""

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        batch = [{**EVENT, "event_id": f"e{n}", "type": "like"} for n in range(10_000)]
        response = await client.post("/v1/events", content=orjson.dumps(batch))
        assert response.status_code == 422
        body = response.json()
        assert set(body) == {"error", "details"}
        assert len(body["details"]) == MAX_DETAILS
        assert [d["index"] for d in body["details"]] == list(range(MAX_DETAILS))
        assert "10000 problem(s)" in body["error"]
        assert f"{10_000 - MAX_DETAILS} more" in body["error"]
        assert len(response.content) < 20_000
        assert engine.applied_events == 0

    run(scenario)


def test_a_few_problems_are_all_listed() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        batch = [{**EVENT, "type": "like"}] * 3
        body = (await client.post("/v1/events", json=batch)).json()
        assert len(body["details"]) == 3
        assert "listed" not in body["error"]

    run(scenario)


def future_message(client_body: dict[str, Any]) -> str:
    [detail] = client_body["details"]
    assert detail["field"] == "timestamp"
    message: str = detail["message"]
    return message


def test_the_milliseconds_hint_only_for_numbers_that_look_like_milliseconds() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        now = time.time()
        cases = [
            (round(now * 1000), True),  # milliseconds
            ("2099-01-01T00:00:00Z", False),  # an ISO date far ahead: no such hint
            (4_070_908_800, False),  # unix seconds in 2099
            (now * 1_000_000, False),  # microseconds: not milliseconds either
        ]
        for timestamp, hinted in cases:
            response = await client.post("/v1/events", json={**EVENT, "timestamp": timestamp})
            assert response.status_code == 422
            message = future_message(response.json())
            assert ("milliseconds?" in message) is hinted, (timestamp, message)
            assert "in the future" in message
        iso = await client.post("/v1/events", json={**EVENT, "timestamp": "2099-01-01T00:00:00Z"})
        assert "years in the future" in future_message(iso.json())
        soon = await client.post("/v1/events", json={**EVENT, "timestamp": now + 3600})
        assert " s in the future" in future_message(soon.json())

    run(scenario)
