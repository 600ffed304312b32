"""The guard of an app and what the OpenAPI document says about it: key schemes, each operation's role.

:func:`install_guard` builds the :class:`~freshrec.api.guard.Guard` once (reading the keys file) and makes
``/openapi.json`` list the two ways to send a key and, per operation, the role it needs
(``x-freshrec-role`` and a sentence in its description); operations whose role is protected by a key
require one of the schemes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from freshrec.api import deps
from freshrec.api.auth import Role
from freshrec.api.guard import Guard
from freshrec.api.schemas import ERRORS
from freshrec.config import ServerSettings

#: the answers of ``/graphql`` (the GraphQL library's own refusals are plain text)
_GRAPHQL_ERROR = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}},
    "text/plain": {},
}
GRAPHQL_RESPONSES: dict[str, Any] = {
    "200": {
        "description": "The GraphQL answer (`data`, `errors`); a GET from a browser: the GraphiQL page.",
        "content": {"application/json": {"schema": {"type": "object"}}, "text/html": {}},
    },
    **{
        str(code): {**ERRORS[code], "content": _GRAPHQL_ERROR}
        for code in (400, 401, 403, 404, 405, 413, 414, 415, 422, 429)
    },
}
for _response in GRAPHQL_RESPONSES.values():
    _response.pop("model", None)
SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <key>`"},
}


def _api_routes(routes: list[Any], inherited: tuple[Any, ...] = ()) -> list[tuple[APIRoute, tuple[Any, ...]]]:
    """Every API route with the dependencies it runs, through included routers (of any FastAPI version)."""
    found: list[tuple[APIRoute, tuple[Any, ...]]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((route, (*inherited, *route.dependencies)))
        router = getattr(route, "original_router", None)  # FastAPI >= 0.160 includes routers lazily
        if router is not None:
            found += _api_routes(router.routes, (*inherited, *router.dependencies))
    return found


def _role_of(dependencies: tuple[Any, ...], guard: Guard) -> Role | None:
    calls: dict[Callable[..., Any], Role | None] = {
        deps.require_read: Role.READ,
        deps.require_write: Role.WRITE,
        deps.require_admin: Role.ADMIN,
        deps.require_metrics: guard.metrics_role,
    }
    for dependency in dependencies:
        if dependency.dependency in calls:
            return calls[dependency.dependency]
    return None


def install_guard(app: FastAPI, server: ServerSettings) -> Guard:
    """Put the server's guard on ``app.state`` and document it in the app's OpenAPI document."""
    guard = app.state.guard = Guard.from_settings(server)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        document.setdefault("components", {})["securitySchemes"] = SCHEMES
        for operation in document["paths"].get("/graphql", {}).values():
            operation["responses"] = GRAPHQL_RESPONSES
        for route, dependencies in _api_routes(app.router.routes):
            if not route.include_in_schema:
                continue
            role = _role_of(dependencies, guard)
            if role is None:
                continue
            for method in route.methods or ():
                operation = document["paths"].get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                operation["x-freshrec-role"] = role.value
                sentence = f"Needs the **{role.value}** role when keys are configured (docs/security.md)."
                operation["description"] = (operation.get("description", "") + "\n\n" + sentence).strip()
                if guard.ring.protected(role):
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return guard
