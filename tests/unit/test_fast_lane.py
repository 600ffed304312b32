"""The fast lane answers byte for byte what the FastAPI routes answer, on the same engine and guard."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
import pytest

from freshrec.api import create_app
from freshrec.api.fast import ITEM_ROUTE, USER_ROUTE, FastLane
from freshrec.config import load_settings
from freshrec.engine import Engine

DIM = 8
STRATEGIES = (
    "personalized",
    "session",
    "trending",
    "trending_for_you",
    "covisit",
    "similar_content",
    "cf",
    "hybrid",
)
READ = [(b"authorization", b"Bearer r-secret")]
WRONG = [(b"authorization", b"Bearer nope")]
WRITE = [(b"x-api-key", b"w-secret")]
T0 = 1_700_000_000.0

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


_BUILT: dict[str, Engine] = {}


def _engine(**server: Any) -> Engine:
    """One engine per server setting (the tests only read it; each app has its own guard)."""
    key = repr(sorted(server.items()))
    if key not in _BUILT:
        _BUILT[key] = _build(server)
    return _BUILT[key]


def _build(server: dict[str, Any]) -> Engine:
    settings = load_settings(
        clock="event",
        server=server,
        embeddings={"model": f"precomputed:{DIM}"},
        cf={"factors": 4, "iterations": 3},
    )
    engine = Engine(settings)
    rng = np.random.default_rng(7)
    engine.upsert_items(
        [
            {
                "item_id": f"i{n}",
                "title": f"Item {n}",
                "category": "books" if n % 2 else "music",
                "embedding": [float(x) for x in rng.normal(size=DIM)],
            }
            for n in range(40)
        ]
    )
    events = []
    for u in range(30):
        for j in range(8):
            item = f"i{(u * 3 + j * 5) % 40}"
            kind = "purchase" if j == 7 else "click"
            events.append(
                {
                    "event_id": f"e{u}-{j}",  # (request ids are fixed in these tests: uuid4 is)
                    "user_id": f"u{u}",
                    "item_id": item,
                    "type": kind,
                    "timestamp": T0 + u * 60 + j,
                }
            )
    engine.ingest(events)
    assert engine.cf.fit(engine.cf.collect(engine.store, engine.applied_events)) is not None
    return engine


async def _call(app: Any, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> Answer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"freshrec.test"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("freshrec.test", 80),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], [(bytes(k), bytes(v)) for k, v in start["headers"]], body


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both answers carry the same request id (a fresh uuid4 per request otherwise)."""
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=42))
    yield


def _both(
    engine: Engine, path: str, query: bytes, headers: list[tuple[bytes, bytes]] = READ
) -> tuple[Answer, Answer, FastLane]:
    app = create_app(engine)
    lane = FastLane(app)

    async def main() -> tuple[Answer, Answer]:
        return await _call(app, path, query, headers), await _call(lane, path, query, headers)

    slow, fast = asyncio.run(main())
    return slow, fast, lane


def _served(lane: FastLane, route: str) -> float:
    """Requests of ``route`` the lane's histogram counted (any status)."""
    total = 0.0
    for metric in lane.histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("route") == route:
                total += sample.value
    return total


USER_QUERIES = [
    *(f"k=5&strategy={s}".encode() for s in STRATEGIES),
    *(f"k=3&strategy={s}&explain=true&exclude_purchased=false".encode() for s in STRATEGIES),
    b"",
    b"k=4&category=books&strategy=personalized",
    b"k=4&category=&strategy=&explain=0",
    b"k=2&k=6&strategy=trending",  # the last value wins
    b"strategy=nope",  # an unknown strategy
    b"k=0",  # validation errors: FastAPI's own 422
    b"k=abc",
    b"k=-1",
    b"k=%2B3",
    b"explain=maybe",
    b"exclude_purchased=TRUE",
    b"k=5&unknown=1",
]


@pytest.mark.usefixtures("fixed_ids")
@pytest.mark.parametrize("query", USER_QUERIES)
@pytest.mark.parametrize("user", ["u3", "never-seen", "a/b"])
def test_user_recommendations_match_the_route(query: bytes, user: str) -> None:
    engine = _engine(read_key="r-secret", write_key="w-secret")
    slow, fast, _ = _both(engine, f"/v1/users/{user}/recommendations", query)
    assert fast == slow
    if query.startswith(b"k=5&strategy=") and user == "u3":
        assert slow[0] == 200 and 1 <= slow[2].count(b'"item_id"') <= 5


@pytest.mark.usefixtures("fixed_ids")
@pytest.mark.parametrize(
    "path",
    [
        "/v1/users//recommendations",  # an empty id
        "/v1/users/" + "x" * 5000 + "/recommendations",  # too long
        "/v1/users/u\x01/recommendations",  # a control character
    ],
)
def test_invalid_ids_match_the_route(path: str) -> None:
    slow, fast, _ = _both(_engine(read_key="r-secret"), path, b"strategy=trending")
    assert slow[0] == 422
    assert fast == slow


@pytest.mark.usefixtures("fixed_ids")
@pytest.mark.parametrize("headers", [[], WRONG, WRITE, READ])
@pytest.mark.parametrize("query", [b"strategy=trending", b"k=0"])
def test_auth_answers_match_the_route(headers: list[tuple[bytes, bytes]], query: bytes) -> None:
    """No key: 401; a wrong one: 401; the write key: 200 (write includes read); the read key: 200."""
    engine = _engine(read_key="r-secret", write_key="w-secret")
    slow, fast, _ = _both(engine, "/v1/users/u1/recommendations", query, headers)
    assert fast == slow
    expected = 401 if headers in ([], WRONG) else (422 if query == b"k=0" else 200)
    assert slow[0] == expected


@pytest.mark.usefixtures("fixed_ids")
def test_rate_limit_and_query_limit_match_the_route() -> None:
    engine = _engine(limits={"rate_per_second": 1, "rate_burst": 1, "max_query_bytes": 256})
    long_query = b"strategy=trending&category=" + b"b" * 300
    slow, fast, _ = _both(engine, "/v1/users/u1/recommendations", long_query, [])
    assert slow[0] == 414 and fast == slow

    # the lane admits through its app's guard; on a fresh app the first request passes, the second waits
    async def twice(target: Any) -> list[Answer]:
        return [await _call(target, "/v1/users/u1/recommendations", b"", []) for _ in range(2)]

    slow_pair = asyncio.run(twice(create_app(engine)))
    fast_pair = asyncio.run(twice(FastLane(create_app(engine))))
    assert [a[0] for a in slow_pair] == [200, 429]
    assert fast_pair == slow_pair


ITEM_QUERIES = [
    b"",
    b"k=3&strategy=covisit",
    b"k=3&strategy=also_bought",
    b"k=3&strategy=similar_content&explain=true",
    b"k=3&strategy=cf&category=books",
    b"k=3&strategy=covisit&user_id=u3",
    b"strategy=nope",
    b"user_id=",
    b"k=0",
]


@pytest.mark.usefixtures("fixed_ids")
@pytest.mark.parametrize("query", ITEM_QUERIES)
@pytest.mark.parametrize("item", ["i3", "missing"])
def test_item_recommendations_match_the_route(query: bytes, item: str) -> None:
    slow, fast, _ = _both(_engine(read_key="r-secret"), f"/v1/items/{item}/recommendations", query)
    assert fast == slow


def test_health_matches_the_route() -> None:
    slow, fast, _ = _both(_engine(read_key="r-secret"), "/health", b"", [])
    assert slow[0] == 200 and fast == slow


@pytest.mark.usefixtures("fixed_ids")
def test_the_lane_records_what_it_answers_and_only_that() -> None:
    engine = _engine()
    app = create_app(engine)
    lane = FastLane(app)

    async def main() -> None:
        await _call(lane, "/v1/users/u1/recommendations", b"strategy=trending", [])
        await _call(lane, "/v1/users/u1/recommendations", b"k=0", [])  # answered by FastAPI
        await _call(lane, "/v1/items/i1/recommendations", b"", [])

    asyncio.run(main())
    assert _served(lane, USER_ROUTE) == 2  # one by the lane, one by FastAPI's middleware, once each
    assert _served(lane, ITEM_ROUTE) == 1


def test_experiments_and_other_paths_go_to_fastapi() -> None:
    """An experiment's exposure is journaled by the route: the lane hands such a request on."""
    engine = _engine()
    app = create_app(engine)

    async def main() -> tuple[Answer, Answer, Answer]:
        lane = FastLane(app)
        a = await _call(lane, "/v1/users/u1/recommendations", b"experiment=missing", [])
        b = await _call(lane, "/openapi.json", b"", [])
        c = await _call(app, "/v1/users/u1/recommendations", b"experiment=missing", [])
        return a, b, c

    via_lane, openapi, direct = asyncio.run(main())
    assert via_lane[0] == direct[0] == 404
    assert openapi[0] == 200 and b"/v1/users/{user_id}/recommendations" in openapi[2]
