"""Bad input against a real server (SPEC §1, §2, §5): a clear 4xx, every problem listed, nothing stored.

Every malformed request names the user ``victim`` and the item ``item-1``, so anything half-stored would show
in that user's profile and history, in that item's popularity and trending rows, in the server's counts or in
the size of its log; all of them are compared before and after each request. The server runs with
``--clock event`` so that nothing in those answers moves between the two reads except through an event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

if TYPE_CHECKING:
    from conftest import Server, StartServer

pytestmark = pytest.mark.heavy

MAX_BATCH = 100
SMALL_BODY = 4096
USER = "victim"
ITEM = "item-1"
VALID: dict[str, Any] = {"user_id": USER, "item_id": ITEM, "type": "purchase", "category": "planted"}
CATALOG = [
    {"item_id": ITEM, "title": "One", "category": "books", "brand": "acme", "price": 12.0},
    {"item_id": "item-2", "title": "Two", "category": "garden", "brand": "acme", "price": 120.0},
]
#: what ``details`` must hold: (index, field), or (index, None) when any field name will do
Problems = set[tuple[int, str | None]]


@pytest.fixture(scope="module")
def api(module_start_server: StartServer) -> Server:
    server = module_start_server(clock="event", env={"FRESHREC_EVENTS__MAX_BATCH": str(MAX_BATCH)})
    server.put_items(CATALOG)
    now = time.time()
    server.send_events(
        [
            {"user_id": USER, "item_id": ITEM, "type": "view", "timestamp": now - 60},
            {"user_id": USER, "item_id": "item-2", "type": "click", "timestamp": now - 30},
            {"user_id": "bystander", "item_id": ITEM, "type": "view", "timestamp": now - 10},
        ]
    )
    return server


@pytest.fixture(scope="module")
def small_body_api(module_start_server: StartServer) -> Server:
    server = module_start_server(clock="event", env={"FRESHREC_EVENTS__MAX_BODY_BYTES": str(SMALL_BODY)})
    server.put_items(CATALOG)
    return server


def stored(server: Server) -> dict[str, Any]:
    """Everything a half-stored request could have changed."""
    assert server.data_dir is not None
    health = server.get_json("/health")
    return {
        "counts": {k: health[k] for k in ("items", "applied_events", "users", "remembered_event_ids", "now")},
        "log_bytes": sum(p.stat().st_size for p in (server.data_dir / "log").glob("*.log")),
        "profile": server.get_json(f"/v1/users/{USER}/profile"),
        "history": server.get_json("/v1/views/user_history", user_id=USER),
        "popularity": server.get_json("/v1/views/item_popularity", item_id=ITEM),
        "trending": server.get_json("/v1/views/content_trending", item_id=ITEM),
        "catalog": [server.get(f"/v1/items/{i}").json() for i in (ITEM, "item-2", "item-new")],
    }


def error_details(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    """Check an error response's shape; its ``details``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "details"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["details"], list)
    for detail in body["details"]:
        assert set(detail) == {"index", "field", "message"}, detail
        assert isinstance(detail["index"], int)
        assert isinstance(detail["field"], str)
        assert detail["field"]
        assert isinstance(detail["message"], str)
        assert detail["message"]
    details: list[dict[str, Any]] = body["details"]
    return details


def assert_problems(details: list[dict[str, Any]], expected: Problems) -> None:
    found = {(d["index"], d["field"]) for d in details}
    wanted_exact = {p for p in expected if p[1] is not None}
    assert wanted_exact <= found, details
    for index, field in expected:
        if field is None:
            assert any(i == index for i, _ in found), (index, details)
    assert {i for i, _ in found} == {i for i, _ in expected}, details


def ev(**changes: Any) -> dict[str, Any]:
    """The valid event with some fields changed; a value of ``...`` removes the field."""
    out = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


HOUR_AHEAD = time.time() + 3_600

# (id, JSON payload, expected problems)
EVENT_CASES: list[tuple[str, Any, Problems]] = [
    ("missing user_id", ev(user_id=...), {(0, "user_id")}),
    ("missing item_id", ev(item_id=...), {(0, "item_id")}),
    ("missing type", ev(type=...), {(0, "type")}),
    ("empty object", {}, {(0, "user_id"), (0, "item_id"), (0, "type")}),
    ("user_id is a number", ev(user_id=42), {(0, "user_id")}),
    ("item_id is null", ev(item_id=None), {(0, "item_id")}),
    ("type is a number", ev(type=3), {(0, "type")}),
    ("price is a word", ev(price="cheap"), {(0, "price")}),
    ("price is a numeric string", ev(price="12.5"), {(0, "price")}),
    ("price is a bool", ev(price=True), {(0, "price")}),
    ("dwell_seconds is a word", ev(dwell_seconds="long"), {(0, "dwell_seconds")}),
    ("dwell_seconds is a numeric string", ev(dwell_seconds="5"), {(0, "dwell_seconds")}),
    ("timestamp is a bool", ev(timestamp=True), {(0, "timestamp")}),
    ("timestamp is an object", ev(timestamp={"s": 1}), {(0, "timestamp")}),
    ("timestamp is a list", ev(timestamp=[1_700_000_000]), {(0, "timestamp")}),
    ("timestamp is not a date", ev(timestamp="yesterday"), {(0, "timestamp")}),
    ("timestamp without UTC offset", ev(timestamp="2024-05-01T10:00:00"), {(0, "timestamp")}),
    ("timestamp negative", ev(timestamp=-1), {(0, "timestamp")}),
    ("timestamp 1 h ahead (number)", ev(timestamp=HOUR_AHEAD), {(0, "timestamp")}),
    ("timestamp 1 h ahead (RFC 3339)", ev(timestamp=rfc3339(HOUR_AHEAD)), {(0, "timestamp")}),
    ("session_id is a number", ev(session_id=7), {(0, "session_id")}),
    ("category is a list", ev(category=["a"]), {(0, "category")}),
    ("properties is a list", ev(properties=[1, 2]), {(0, "properties")}),
    ("properties over 4 KiB", ev(properties={"blob": "x" * 4_200}), {(0, "properties")}),
    ("unknown type", ev(type="like"), {(0, "type")}),
    ("negative price", ev(price=-0.01), {(0, "price")}),
    ("negative dwell", ev(dwell_seconds=-1), {(0, "dwell_seconds")}),
    ("empty user_id", ev(user_id=""), {(0, "user_id")}),
    ("empty item_id", ev(item_id=""), {(0, "item_id")}),
    ("empty type", ev(type=""), {(0, "type")}),
    ("empty event_id", ev(event_id=""), {(0, "event_id")}),
    ("user_id of 257 chars", ev(user_id="u" * 257), {(0, "user_id")}),
    ("item_id of 1025 chars", ev(item_id="i" * 1025), {(0, "item_id")}),
    ("event_id of 129 chars", ev(event_id="e" * 129), {(0, "event_id")}),
    ("session_id of 257 chars", ev(session_id="s" * 257), {(0, "session_id")}),
    ("brand of 257 chars", ev(brand="b" * 257), {(0, "brand")}),
    ("unknown extra field", ev(colour="red"), {(0, "colour")}),
    (
        "several problems in one event",
        ev(user_id=5, price=-3, colour="red"),
        {(0, "user_id"), (0, "price"), (0, "colour")},
    ),
    (
        "field-type and rule problems in one event",
        ev(user_id=5, type="like", timestamp=HOUR_AHEAD),
        {(0, "user_id"), (0, "type"), (0, "timestamp")},
    ),
    ("batch: problems at 0 and 3", [ev(type="like"), VALID, ev(), ev(price=-1)], {(0, "type"), (3, "price")}),
    (
        "batch: schema problems at 1 and 2",
        [VALID, ev(user_id=...), ev(dwell_seconds="long", colour=1)],
        {(1, "user_id"), (2, "dwell_seconds"), (2, "colour")},
    ),
    (
        "batch: a schema problem at 0 and a future timestamp at 2",
        [ev(item_id=""), VALID, ev(timestamp=HOUR_AHEAD)],
        {(0, "item_id"), (2, "timestamp")},
    ),
    ("batch: an element that is not an object", [VALID, 5, "x"], {(1, None), (2, None)}),
]


@pytest.mark.parametrize(
    ("payload", "expected"), [c[1:] for c in EVENT_CASES], ids=[c[0] for c in EVENT_CASES]
)
def test_malformed_events_are_rejected_whole(api: Server, payload: Any, expected: Problems) -> None:
    before = stored(api)
    details = error_details(api.post_events(payload), 422)
    assert_problems(details, expected)
    assert stored(api) == before


BODY_CASES: list[tuple[str, bytes]] = [
    ("invalid JSON", b'{"user_id": "victim", "item_id": "item-1", "type": "view"'),
    ("trailing garbage", orjson.dumps(VALID) + b" x"),
    ("empty body", b""),
    ("not UTF-8", b'{"user_id": "\xff\xfe", "item_id": "item-1", "type": "view"}'),
    ("NaN", b'{"user_id": "victim", "item_id": "item-1", "type": "view", "price": NaN}'),
    ("a number", b"42"),
    ("a string", b'"victim"'),
    ("null", b"null"),
    ("true", b"true"),
    ("an empty array", b"[]"),
]


@pytest.mark.parametrize("body", [c[1] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_bodies_that_are_not_events_are_rejected(api: Server, body: bytes) -> None:
    before = stored(api)
    response = api.client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    error_details(response, 422)
    assert stored(api) == before


def test_the_error_names_what_is_wrong(api: Server) -> None:
    details = error_details(api.post_events([VALID, ev(type="like")]), 422)
    assert details[0]["index"] == 1
    assert "like" in details[0]["message"]
    assert "view" in details[0]["message"]  # and what is accepted instead
    body = api.post_events(ev(timestamp="2024-05-01T10:00:00")).json()
    assert "offset" in body["details"][0]["message"]
    body = api.client.post("/v1/events", content=b"[]").json()
    assert "empty" in body["error"]


def test_too_many_events_is_413(api: Server) -> None:
    before = stored(api)
    batch = [ev(event_id=f"many-{n}") for n in range(MAX_BATCH + 1)]
    error_details(api.post_events(batch), 413)
    assert stored(api) == before
    # the limit itself is fine
    accepted = api.send_events([{**e, "user_id": "limit-user"} for e in batch[:MAX_BATCH]])
    assert accepted["accepted"] == MAX_BATCH


def _chunks(data: bytes, size: int = 1_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_oversize_body_is_413(small_body_api: Server) -> None:
    before = stored(small_body_api)
    big = orjson.dumps([ev(event_id=f"big-{n}") for n in range(60)])
    assert len(big) > SMALL_BODY
    error_details(small_body_api.client.post("/v1/events", content=big), 413)
    # without a Content-Length (chunked), the limit holds while the body streams in
    error_details(small_body_api.client.post("/v1/events", content=_chunks(big)), 413)
    assert stored(small_body_api) == before
    fits = orjson.dumps([ev(event_id=f"fits-{n}") for n in range(3)])
    assert small_body_api.client.post("/v1/events", content=fits).status_code == 202


def test_properties_of_4_kib_are_fine(api: Server) -> None:
    blob = "x" * (4_096 - len(orjson.dumps({"blob": ""})))
    assert len(orjson.dumps({"blob": blob})) == 4_096
    accepted = api.send_events({**VALID, "user_id": "props-user", "properties": {"blob": blob}})
    assert accepted["accepted"] == 1


# -- items ----------------------------------------------------------------------------------------------

ITEM_CASES: list[tuple[str, Any, Problems]] = [
    ("negative price", {"price": -5}, {(0, "price")}),
    ("price is a word", {"price": "cheap"}, {(0, "price")}),
    ("price is a numeric string", {"price": "12"}, {(0, "price")}),
    ("in_stock is a word", {"in_stock": "maybe"}, {(0, "in_stock")}),
    ("in_stock is 'yes'", {"in_stock": "yes"}, {(0, "in_stock")}),
    ("in_stock is 0", {"in_stock": 0}, {(0, "in_stock")}),
    ("tags is a string", {"tags": "a,b"}, {(0, "tags")}),
    ("category of 257 chars", {"category": "c" * 257}, {(0, "category")}),
    ("unknown field", {"colour": "red"}, {(0, "colour")}),
    ("two problems", {"price": -1, "colour": "red"}, {(0, "price"), (0, "colour")}),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in ITEM_CASES], ids=[c[0] for c in ITEM_CASES])
def test_malformed_item_put_is_rejected(api: Server, changes: dict[str, Any], expected: Problems) -> None:
    before = stored(api)
    existing = {**CATALOG[0], **changes}
    details = error_details(api.client.put(f"/v1/items/{ITEM}", json=existing), 422)
    assert_problems(details, expected)
    new = {"item_id": "item-new", "category": "books", **changes}
    details = error_details(api.client.put("/v1/items/item-new", json=new), 422)
    assert_problems(details, expected)
    assert stored(api) == before


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps({**CATALOG[0], "item_id": "item-2"}),  # the body names another item than the path
        orjson.dumps({**CATALOG[0], "item_id": 1}),
        orjson.dumps([CATALOG[0]]),
        b"42",
        b'{"title": ',
        b"",
    ],
    ids=[
        "item_id differs from the path",
        "item_id a number",
        "an array",
        "a number",
        "invalid JSON",
        "empty",
    ],
)
def test_item_put_with_a_bad_body(api: Server, body: bytes) -> None:
    before = stored(api)
    error_details(api.client.put(f"/v1/items/{ITEM}", content=body), 422)
    assert stored(api) == before


def test_bulk_items_list_every_problem_and_store_none(api: Server) -> None:
    before = stored(api)
    items = [
        {"item_id": "item-new", "price": -1},
        {"item_id": "item-new-ok", "category": "books"},
        {"item_id": "item-new-2", "in_stock": "maybe", "colour": "red"},
        {"title": "no id"},
    ]
    details = error_details(api.client.post("/v1/items", json=items), 422)
    assert_problems(details, {(0, "price"), (2, "in_stock"), (2, "colour"), (3, "item_id")})
    assert api.get("/v1/items/item-new-ok").status_code == 404
    for body in (b"{}", b"[]", b"null", b"[1]", b"[{"):
        error_details(api.client.post("/v1/items", content=body), 422)
    assert stored(api) == before


# -- reads ------------------------------------------------------------------------------------------------

READ_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("unknown strategy", {"strategy": "magic"}, 422),
    ("k=0", {"k": 0}, 422),
    ("k=-1", {"k": -1}, 422),
    ("k=100000", {"k": 100_000}, 422),
    ("k is a word", {"k": "ten"}, 422),
    ("explain is a word", {"explain": "maybe"}, 422),
    ("exclude_purchased is a number", {"exclude_purchased": 2}, 422),
]


@pytest.mark.parametrize(("params", "status"), [c[1:] for c in READ_CASES], ids=[c[0] for c in READ_CASES])
def test_bad_recommendation_requests(api: Server, params: dict[str, Any], status: int) -> None:
    for user in (USER, "nobody-at-all"):
        error_details(api.get(f"/v1/users/{user}/recommendations", **params), status)


def test_unknown_strategy_names_the_known_ones(api: Server) -> None:
    body = api.get(f"/v1/users/{USER}/recommendations", strategy="magic").json()
    assert "magic" in body["error"]
    assert "personalized" in body["error"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/views/no_such_view", {}, 404),
        ("/v1/views/no_such_view", {"user_id": USER}, 404),
        ("/v1/views/item_popularity", {"user_id": USER}, 422),
        ("/v1/views/user_history", {"item_id": ITEM}, 422),
        ("/v1/views/user_history", {"limit": 0}, 422),
        ("/v1/trending", {"k": 0}, 422),
        ("/v1/trending", {"k": 100_000}, 422),
        (f"/v1/users/{USER}/profile", {"limit": 0}, 422),
        ("/v1/items/no-such-item", {}, 404),
    ],
)
def test_bad_reads(api: Server, path: str, params: dict[str, Any], status: int) -> None:
    error_details(api.get(path, **params), status)


def test_deleting_an_unknown_item_is_404(api: Server) -> None:
    before = stored(api)
    error_details(api.client.delete("/v1/items/no-such-item"), 404)
    assert stored(api) == before


def test_no_request_was_answered_with_a_5xx(api: Server) -> None:
    """Runs last in this module: the server's own request metrics saw 4xx answers, never a 5xx."""
    samples = [line for line in api.get("/metrics").text.splitlines() if line.startswith("freshrec_request")]
    assert any('status="422"' in line for line in samples)
    assert not [line for line in samples if 'status="5' in line]
