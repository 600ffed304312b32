"""Roles: every REST route and every GraphQL field passes the same key check (``freshrec.api.auth``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from strawberry.types.base import get_object_definition

from freshrec.api import create_app
from freshrec.api.auth import KeyRing, Role, presented_key
from freshrec.api.graphql import Mutation, Query, Reads, Writes
from freshrec.config import ServerSettings, load_settings
from freshrec.engine import Engine
from freshrec.errors import InvalidInput
from freshrec.experiments import ExperimentIn

KEYS = {"read_key": "r-secret", "write_key": "w-secret"}
NONE: dict[str, str] = {}
READ = {"authorization": "Bearer r-secret"}
WRITE = {"authorization": "Bearer w-secret"}
WRONG = {"authorization": "Bearer nope"}

ITEM = {"item_id": "a", "title": "A page", "category": "books"}
EXPERIMENT: dict[str, Any] = {
    "variants": [
        {"name": "control", "weight": 1, "strategy": "trending"},
        {"name": "fresh", "weight": 1, "strategy": "personalized"},
    ]
}
# each GraphQL operation: (query, the role of its REST twin)
GRAPHQL: dict[str, tuple[str, Role]] = {
    "Recommendation": ('{ Recommendation(url: "a") { recommendation frequency } }', Role.READ),
    "SimilarContent": ('{ SimilarContent(userid: "u1") { url similarity } }', Role.READ),
    "Clickstream": ('mutation { Clickstream(click: {userid: "u2", url: "a"}) { eventId } }', Role.WRITE),
    "Content": ('mutation { Content(event: {url: "evil", title: "Evil"}) { url } }', Role.WRITE),
}


def run(scenario: Callable[[httpx.AsyncClient, Engine], Awaitable[None]], **server: Any) -> None:
    """``scenario`` against the real app on a fresh engine (no embedding model: roles are the point)."""
    engine = Engine(load_settings(server=server, embeddings={"model": "none"}, cf={"enabled": False}))
    engine.upsert_items([ITEM])
    engine.ingest([{"user_id": "u1", "item_id": "a", "type": "click"}])
    spec = ExperimentIn.model_validate(EXPERIMENT)
    engine.apply_record(engine.experiments.put_record("exp", spec, engine.strategies, 0.0))

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            await scenario(client, engine)

    asyncio.run(main())


def stored(engine: Engine) -> tuple[int, bool]:
    """What a refused write must not change: applied events, and whether the item ``evil`` exists."""
    return engine.applied_events, engine.catalog.get("evil") is not None


@pytest.mark.parametrize("name", sorted(GRAPHQL))
@pytest.mark.parametrize(
    ("headers", "who"), [(NONE, "none"), (WRONG, "wrong"), (READ, "read"), (WRITE, "write")]
)
def test_every_graphql_operation_needs_the_role_of_its_rest_twin(
    name: str, headers: dict[str, str], who: str
) -> None:
    query, role = GRAPHQL[name]
    allowed = who == "write" or (who == "read" and role is Role.READ)

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        before = stored(engine)
        response = await client.post("/graphql", json={"query": query}, headers=headers)
        body = response.json()
        if allowed:
            assert response.status_code == 200, body
            assert "errors" not in body, body
            assert body["data"][name] is not None
            return
        assert response.status_code == (403 if who == "read" else 401), body
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == ("FORBIDDEN" if who == "read" else "UNAUTHENTICATED")
        assert role.value in error["message"]
        assert stored(engine) == before

    run(scenario, **KEYS)


@pytest.mark.parametrize("name", sorted(GRAPHQL))
def test_without_keys_configured_graphql_is_open(name: str) -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        response = await client.post("/graphql", json={"query": GRAPHQL[name][0]})
        assert response.status_code == 200, response.text
        assert "errors" not in response.json()

    run(scenario)


def test_the_reported_bypass_is_closed() -> None:
    """The new user's report: a Content mutation with no header put the item ``evil`` in the catalog."""

    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        mutation = 'mutation { Content(event: {url: "evil", title: "x", text: "y"}) { url } }'
        assert (await client.post("/graphql", json={"query": mutation})).status_code == 401
        assert (await client.get("/v1/items/evil", headers=READ)).status_code == 404
        assert engine.catalog.get("evil") is None

    run(scenario, **KEYS)


def test_a_mutation_refused_halfway_stores_nothing_after_the_refusal() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        both = (
            'mutation { Clickstream(click: {userid: "u2", url: "a"}) { eventId } '
            'Content(event: {url: "evil"}) { url } }'
        )
        response = await client.post("/graphql", json={"query": both}, headers=READ)
        assert response.status_code == 403
        assert stored(engine) == (1, False)

    run(scenario, **KEYS)


def test_every_graphql_field_declares_a_role() -> None:
    """A field added later without a role would be open to anyone: it fails here instead."""
    for root, role in ((Query, Reads), (Mutation, Writes)):
        definition = get_object_definition(root, strict=True)
        for field in definition.fields:
            assert field.permission_classes == [role], f"{root.__name__}.{field.name}"
        assert {f.graphql_name for f in definition.fields} <= set(GRAPHQL)


# REST: (method, route template, path, body, role); the twins of the GraphQL operations first
REST: list[tuple[str, str, str, Any, Role]] = [
    ("GET", "/v1/items/{item_id:path}/recommendations", "/v1/items/a/recommendations", None, Role.READ),
    ("GET", "/v1/users/{user_id:path}/recommendations", "/v1/users/u1/recommendations", None, Role.READ),
    ("POST", "/v1/events", "/v1/events", {"user_id": "u2", "item_id": "a", "type": "click"}, Role.WRITE),
    ("PUT", "/v1/items/{item_id:path}", "/v1/items/evil", {"title": "Evil"}, Role.WRITE),
    ("POST", "/v1/items", "/v1/items", [{"item_id": "evil"}], Role.WRITE),
    ("DELETE", "/v1/items/{item_id:path}", "/v1/items/a", None, Role.WRITE),
    ("GET", "/v1/items/{item_id:path}", "/v1/items/a", None, Role.READ),
    ("GET", "/v1/users/{user_id:path}/profile", "/v1/users/u1/profile", None, Role.READ),
    ("GET", "/v1/trending", "/v1/trending", None, Role.READ),
    ("GET", "/v1/views/{view}", "/v1/views/item_popularity", None, Role.READ),
    ("GET", "/v1/admin/models", "/v1/admin/models", None, Role.READ),
    ("POST", "/v1/admin/train", "/v1/admin/train", None, Role.ADMIN),
    ("GET", "/v1/experiments", "/v1/experiments", None, Role.READ),
    ("GET", "/v1/experiments/{experiment_id}", "/v1/experiments/exp", None, Role.READ),
    ("GET", "/v1/experiments/{experiment_id}/results", "/v1/experiments/exp/results", None, Role.READ),
    ("PUT", "/v1/experiments/{experiment_id}", "/v1/experiments/evil", EXPERIMENT, Role.ADMIN),
    ("DELETE", "/v1/experiments/{experiment_id}", "/v1/experiments/exp", None, Role.ADMIN),
]


def state(engine: Engine) -> tuple[int, int, bool, int, bool]:
    experiments = engine.experiments.declared
    return (
        engine.applied_events,
        len(engine.catalog),
        engine.catalog.get("evil") is not None,
        len(experiments),
        experiments["exp"].active,
    )


@pytest.mark.parametrize(("method", "template", "path", "body", "role"), REST)
def test_every_rest_route_needs_its_role(
    method: str, template: str, path: str, body: Any, role: Role
) -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        def send(headers: dict[str, str]) -> Awaitable[httpx.Response]:
            return client.request(method, path, json=body, headers=headers)

        before = state(engine)
        for headers in (NONE, WRONG, {"x-api-key": "nope"}):
            assert (await send(headers)).status_code == 401
        assert (await send(READ)).status_code == (200 if role is Role.READ else 403)
        assert state(engine) == before
        # training is refused for another reason here (CF is disabled): past the role check
        assert (await send({"x-api-key": "w-secret"})).status_code in (200, 202, 409)

    run(scenario, **KEYS)


def test_every_v1_route_is_in_the_table() -> None:
    app = create_app(Engine(load_settings(cf={"enabled": False}, embeddings={"model": "none"})))
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in operations
    }
    assert routes == {(method, template.replace(":path", "")) for method, template, *_ in REST}


def test_only_one_role_configured_leaves_the_other_open() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        assert (await client.get("/v1/users/u1/recommendations")).status_code == 200
        event = {"user_id": "u2", "item_id": "a", "type": "click"}
        assert (await client.post("/v1/events", json=event)).status_code == 401
        query = GRAPHQL["SimilarContent"][0]
        assert (await client.post("/graphql", json={"query": query})).status_code == 200

    run(scenario, write_key="w-secret")


def test_the_key_ring_grants_roles_and_the_write_key_reads() -> None:
    ring = KeyRing.from_settings(ServerSettings(read_key="r", write_key="w"))
    assert ring.roles_of("r") == {Role.READ}
    assert ring.roles_of("w") == {Role.READ, Role.WRITE}
    assert ring.roles_of("x") == frozenset()
    assert ring.roles_of(None) == frozenset()
    assert ring.roles_of("w" * 10_000) == frozenset()
    open_ring = KeyRing.from_settings(ServerSettings())
    assert not open_ring.protected(Role.READ)
    assert not open_ring.protected(Role.WRITE)
    open_ring.check(None, Role.WRITE)


def test_the_key_is_read_from_either_header() -> None:
    assert presented_key({"authorization": "Bearer k"}) == "k"
    assert presented_key({"authorization": "bearer  k "}) == "k"
    assert presented_key({"x-api-key": "k"}) == "k"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}) is None


def test_experiments_need_the_admin_key_when_one_is_configured() -> None:
    async def scenario(client: httpx.AsyncClient, engine: Engine) -> None:
        path = "/v1/experiments/evil"
        assert (await client.put(path, json=EXPERIMENT, headers=WRITE)).status_code == 403
        assert (await client.delete("/v1/experiments/exp", headers=WRITE)).status_code == 403
        assert "evil" not in engine.experiments.declared and engine.experiments.get("exp").active
        admin = {"authorization": "Bearer a-secret"}
        assert (await client.put(path, json=EXPERIMENT, headers=admin)).status_code == 200
        # the admin key also writes and reads
        event = {"user_id": "u2", "item_id": "a", "type": "click"}
        assert (await client.post("/v1/events", json=event, headers=admin)).status_code == 202
        assert (await client.get("/v1/experiments", headers=admin)).status_code == 200

    run(scenario, admin_key="a-secret", **KEYS)


def test_the_admin_role_is_never_more_open_than_writing() -> None:
    write_only = KeyRing.from_settings(ServerSettings(write_key="w"))
    assert write_only.protected(Role.ADMIN)
    write_only.check("w", Role.ADMIN)
    with pytest.raises(InvalidInput) as refused:
        write_only.check(None, Role.ADMIN)
    assert refused.value.status == 401
    ring = KeyRing.from_settings(ServerSettings(read_key="r", write_key="w", admin_key="a"))
    assert ring.roles_of("a") == {Role.READ, Role.WRITE, Role.ADMIN}
    assert ring.roles_of("w") == {Role.READ, Role.WRITE}
    with pytest.raises(InvalidInput) as forbidden:
        ring.check("w", Role.ADMIN)
    assert forbidden.value.status == 403
    read_only = KeyRing.from_settings(ServerSettings(read_key="r"))
    assert not read_only.protected(Role.ADMIN)
