"""schemathesis against a real ``freshrec serve``: every operation of its OpenAPI document, and ``/graphql``.

The server runs on a loopback port with a data directory and a keys file (a read, a write and an admin
key). Every operation is fuzzed with schema-conforming and schema-violating inputs (schemathesis'
positive and negative modes), once with the admin key and once without a key, a bounded number of
examples each; every answer must be below 500 and conform to the document: a documented status code,
its content type, headers and body schema. ``/graphql`` is fuzzed with generated queries and mutations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from freshrec.api import create_app
from freshrec.api import graphql as graphql_api
from freshrec.config import load_settings
from freshrec.engine import Engine

if TYPE_CHECKING:
    from conftest import Server, StartServer

READ_KEY = "fuzz-read-key-0123456789"
WRITE_KEY = "fuzz-write-key-0123456789"
ADMIN_KEY = "fuzz-admin-key-0123456789"
HEADERS: dict[str, dict[str, str]] = {"admin": {"Authorization": f"Bearer {ADMIN_KEY}"}, "none": {}}
#: examples per operation and mode; the whole module stays under ~2 minutes on a 2-core machine
EXAMPLES = 12
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(module_start_server: StartServer, tmp_path_factory: pytest.TempPathFactory) -> Server:
    keys = tmp_path_factory.mktemp("keys") / "keys.toml"
    keys.write_text(
        "".join(
            f'[[keys]]\nname = "{role}"\nrole = "{role}"\nkey = "{key}"\n\n'
            for role, key in (("read", READ_KEY), ("write", WRITE_KEY), ("admin", ADMIN_KEY))
        )
    )
    env = {
        "FRESHREC_SERVER__API_KEYS": str(keys),
        "FRESHREC_CF__ENABLED": "false",
        "FRESHREC_STORAGE__FSYNC": "false",
    }
    server = module_start_server(clock="event", env=env)
    write = {"x-api-key": WRITE_KEY}
    items = [
        {
            "item_id": f"item-{n}",
            "title": f"Item {n}",
            "category": ("books", "garden")[n % 2],
            "price": 5.0 * n,
        }
        for n in range(1, 9)
    ]
    assert server.client.post("/v1/items", json=items, headers=write).status_code == 200
    events = [
        {"user_id": f"user-{n % 3}", "item_id": f"item-{n % 8 + 1}", "type": "click", "timestamp": 1.7e9 + n}
        for n in range(40)
    ]
    assert server.client.post("/v1/events", json=events, headers=write).status_code == 202
    return server


def _document() -> dict[str, Any]:
    """The OpenAPI document of a server with keys for every role (what the fuzzed server serves)."""
    keys = {"read_key": READ_KEY, "write_key": WRITE_KEY, "admin_key": ADMIN_KEY}
    settings = load_settings(server=keys, embeddings={"model": "none"}, cf={"enabled": False})
    return create_app(Engine(settings)).openapi()


# schemathesis' lazy loader (from a fixture) does not run on pytest 9, so the document is loaded at import
DOCUMENT = _document()
openapi = schemathesis.openapi.from_dict(DOCUMENT)
graphql = schemathesis.graphql.from_dict(graphql_api.schema.introspect())


def test_the_fuzzed_document_is_the_served_one(fuzzed: Server) -> None:
    assert fuzzed.client.get("/openapi.json").json() == DOCUMENT


@openapi.parametrize()
@FUZZ_SETTINGS
def test_every_operation_with_the_admin_key(case: Any, fuzzed: Server) -> None:
    case.call_and_validate(base_url=fuzzed.url, headers=HEADERS["admin"], checks=CHECKS, timeout=30)


@openapi.parametrize()
@FUZZ_SETTINGS
def test_every_operation_without_a_key(case: Any, fuzzed: Server) -> None:
    """Refused (401) before anything runs, except the open /health and /metrics.

    Also 404/405 when the generated path or method matches no route (an id with a newline, a method the
    path lacks), and 414 for a query string over the limit: those are answered before the role check.
    """
    response = case.call_and_validate(base_url=fuzzed.url, headers=HEADERS["none"], checks=CHECKS, timeout=30)
    if case.path in ("/health", "/metrics", "/graphql"):  # /graphql: roles per field, tested below
        return
    unrouted = response.status_code in (404, 405) and response.json()["error"] in (
        "Not Found",
        "Method Not Allowed",
    )
    assert response.status_code in (401, 414) or unrouted, response.text


@openapi.parametrize()
@FUZZ_SETTINGS
def test_schema_violating_input_is_refused(case: Any, fuzzed: Server) -> None:
    """Inputs the document forbids get a 4xx (schemathesis' negative-data check; 414 is a refusal too)."""
    response = case.call(base_url=fuzzed.url, headers=HEADERS["admin"], timeout=30)
    checks = (
        [not_a_server_error] if response.status_code == 414 else [not_a_server_error, negative_data_rejection]
    )
    case.validate_response(response, checks=checks)


@graphql.parametrize()
@FUZZ_SETTINGS
def test_graphql_queries_and_mutations(case: Any, fuzzed: Server) -> None:
    response = case.call(base_url=f"{fuzzed.url}/graphql", headers=HEADERS["admin"], timeout=30)
    assert response.status_code < 500, response.text
    body = response.json()
    assert "data" in body or "errors" in body, body


def test_the_fuzzed_server_logged_no_internal_error(fuzzed: Server) -> None:
    """Runs after the fuzzing: nothing in the server's log is a traceback."""
    assert "Traceback" not in fuzzed.stderr(), fuzzed.stderr()[-4000:]
