"""Shared route helpers: the runtime, the request body with a size limit, roles and limits, ids in paths."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from fastapi import Request

from freshrec.api.auth import Role
from freshrec.api.guard import Guard, guard_of
from freshrec.errors import FieldProblem, InvalidInput
from freshrec.events import id_problem

if TYPE_CHECKING:
    from freshrec.api.app import Runtime


#: set on answers computed without the state store (distributed mode during an outage): why, and from what
DEGRADED_HEADER = "X-Freshrec-Degraded"


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def request_id() -> str:
    return uuid.uuid4().hex


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidInput(f"request body is {declared} bytes; the limit is {limit}", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidInput(f"request body is larger than the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def guard(request: Request) -> Guard:
    """The app's :class:`~freshrec.api.guard.Guard` (keys, rate limit, query limit)."""
    return guard_of(request.app.state, runtime(request).engine.settings.server)


def admit(request: Request, needed: Role | None) -> None:
    """The checks of a guarded route: query-string size, rate limit, then ``needed`` (None: no role)."""
    client = request.scope.get("client")
    guard(request).admit(
        request.headers, client[0] if client else None, request.scope["query_string"], needed
    )


def require_write(request: Request) -> None:
    admit(request, Role.WRITE)


def require_admin(request: Request) -> None:
    admit(request, Role.ADMIN)


def require_read(request: Request) -> None:
    """The read role; then the runtime's mirrors are brought up to date (distributed mode)."""
    admit(request, Role.READ)
    runtime(request).before_read()


def require_metrics(request: Request) -> None:
    """The role ``server.metrics_role`` names (none when 'open'; the rate and query limits still apply)."""
    admit(request, guard(request).metrics_role)


async def limit_graphql_body(request: Request) -> None:
    """``/graphql``: query and rate limits, and the body read up to ``server.limits.max_graphql_bytes``.

    Roles are checked per field (queries read, mutations write). The body read here is the one the
    GraphQL handler parses (Starlette keeps it on the request).
    """
    admit(request, None)
    if request.method == "POST":
        limit = runtime(request).engine.settings.server.limits.max_graphql_bytes
        request._body = await read_body(request, limit)


def path_id(value: str, field: str, max_length: int) -> str:
    """An id taken from a path, checked as the same id in an event is (422 naming the field)."""
    problem = id_problem(value, max_length)
    if problem is not None:
        raise InvalidInput(f"invalid {field} in the path: {problem}", [FieldProblem(0, field, problem)])
    return value
