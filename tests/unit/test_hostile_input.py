"""Hostile input through the real app: a 4xx every time, and nothing stored.

Malformed JSON, wrong types, huge numbers, NaN, odd Unicode, a 10 MB body and path traversal in ids, sent
to events, items, experiments and GraphQL; after each one the engine's events, catalog and experiments are
what they were.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.engine import Engine

EVENT = {"user_id": "u", "item_id": "a", "type": "click"}
TEN_MB = b'{"user_id": "u", "item_id": "a", "type": "click", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
# (method, path, raw body or JSON) -> each must be refused with a 4xx
HOSTILE: list[tuple[str, str, Any]] = [
    ("POST", "/v1/events", b'{"user_id": "u", "item_id": "a", "type": "click"'),  # malformed JSON
    ("POST", "/v1/events", b"\xff\xfe\x00"),  # not UTF-8
    ("POST", "/v1/events", {"user_id": 5, "item_id": ["a"], "type": "click"}),  # wrong types
    ("POST", "/v1/events", {**EVENT, "timestamp": 10**400}),  # a huge number
    ("POST", "/v1/events", b'{"user_id": "u", "item_id": "a", "type": "click", "timestamp": 1e999}'),
    ("POST", "/v1/events", b'{"user_id": "u", "item_id": "a", "type": "click", "price": NaN}'),
    ("POST", "/v1/events", {**EVENT, "timestamp": -1e300}),
    ("POST", "/v1/events", {**EVENT, "user_id": "\ud800"}),  # a lone surrogate
    ("POST", "/v1/events", {**EVENT, "user_id": "u\x00"}),  # a NUL
    ("POST", "/v1/events", {**EVENT, "user_id": "\u202e" * 300}),  # too long
    ("POST", "/v1/events", TEN_MB),  # 10 MB
    ("PUT", "/v1/items/../../etc/passwd", {"title": "x"}),  # path traversal
    ("PUT", "/v1/items/a%00b", {"title": "x"}),
    ("PUT", "/v1/items/b", b"[1, 2"),
    ("PUT", "/v1/items/b", {"title": 5, "price": "cheap"}),
    ("PUT", "/v1/items/b", {"price": 1e400}),
    ("POST", "/v1/items", TEN_MB.replace(b"{", b"[{", 1)),
    ("PUT", "/v1/experiments/..%2f..%2fx", {"variants": []}),
    ("PUT", "/v1/experiments/e", b"{not json"),
    ("PUT", "/v1/experiments/e", {"variants": [{"name": "a", "weight": float("nan")}]}),
    (
        "POST",
        "/graphql",
        b'{"query": "mutation { Clickstream(click: {userid: \\"\\u0000\\", url: \\"a\\"}) { eventId } }"}',
    ),
    ("POST", "/graphql", TEN_MB),
]


def encoded(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    import json

    return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")


def snapshot(engine: Engine) -> tuple[int, list[str], list[str]]:
    items = sorted(
        i for i in ("a", "b", "../../etc/passwd", "../secret", "a\x00b", "../../x") if engine.catalog.get(i)
    )
    return engine.applied_events, items, sorted(engine.experiments.declared)


@pytest.mark.parametrize(
    ("method", "path", "body"), HOSTILE, ids=[f"{m} {p} #{i}" for i, (m, p, _) in enumerate(HOSTILE)]
)
def test_hostile_input_is_a_4xx_and_stores_nothing(method: str, path: str, body: Any) -> None:
    engine = Engine(load_settings(embeddings={"model": "none"}, cf={"enabled": False}))
    engine.upsert_items([{"item_id": "a", "category": "books"}])

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            before = snapshot(engine)
            headers = {"content-type": "application/json"}
            response = await client.request(method, path, content=encoded(body), headers=headers)
            if path == "/graphql" and response.status_code == 200:  # GraphQL's refusal: errors, no data
                assert response.json()["errors"], response.text
            else:
                assert 400 <= response.status_code < 500, response.text[:500]
            assert snapshot(engine) == before

    asyncio.run(main())
