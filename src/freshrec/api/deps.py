"""Shared route helpers: the runtime, the request body with a size limit, and API keys."""

from __future__ import annotations

import hmac
import uuid
from typing import TYPE_CHECKING

from fastapi import Request

from freshrec.errors import InvalidInput

if TYPE_CHECKING:
    from freshrec.api.app import Runtime
    from freshrec.config import ServerSettings


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


def _check(request: Request, key: str | None) -> None:
    if key is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise InvalidInput("missing or wrong API key (send 'Authorization: Bearer <key>')", status=401)


def require_write(request: Request) -> None:
    _check(request, runtime(request).engine.settings.server.write_key)


def require_read(request: Request) -> None:
    """The read key, when set; then the runtime's mirrors are brought up to date (distributed mode)."""
    rt = runtime(request)
    _check_read(request, rt.engine.settings.server)
    rt.before_read()


def _check_read(request: Request, server: ServerSettings) -> None:
    # the write key may read too
    if server.read_key is not None and server.write_key is not None:
        try:
            _check(request, server.write_key)
            return
        except InvalidInput:
            pass
    _check(request, server.read_key)
