"""Shared route helpers: the runtime, the request body with a size limit, roles, ids in paths."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from fastapi import Request

from freshrec.api.auth import Role, authorize
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


def require_write(request: Request) -> None:
    authorize(request.headers, runtime(request).engine.settings.server, Role.WRITE)


def require_admin(request: Request) -> None:
    authorize(request.headers, runtime(request).engine.settings.server, Role.ADMIN)


def require_read(request: Request) -> None:
    """The read role; then the runtime's mirrors are brought up to date (distributed mode)."""
    rt = runtime(request)
    authorize(request.headers, rt.engine.settings.server, Role.READ)
    rt.before_read()


def path_id(value: str, field: str, max_length: int) -> str:
    """An id taken from a path, checked as the same id in an event is (422 naming the field)."""
    problem = id_problem(value, max_length)
    if problem is not None:
        raise InvalidInput(f"invalid {field} in the path: {problem}", [FieldProblem(0, field, problem)])
    return value
