"""A reader process's runtime and the ASGI front every serving process puts before the app.

* :class:`ReaderRuntime`: reads are answered from the process's own (forked) engine, caught up with the
  writer's journal before each one (:class:`~freshrec.workers.follower.Follower`); it never writes.
* :class:`WorkerFront`: names the answering process in ``X-Freshrec-Worker`` and, in a reader, hands every
  request that writes (or reads the writer's own counters) to the writer over its Unix socket, returning
  the writer's answer unchanged but for ``X-Freshrec-Forwarded-By`` (:class:`Forwarder`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from freshrec.api.app import Runtime
from freshrec.engine import Engine
from freshrec.workers.follower import Follower

#: names the process that answered (the writer's PID for a forwarded request)
WORKER_HEADER = b"x-freshrec-worker"
#: added to a forwarded answer: the reader that handed the request to the writer
FORWARDED_HEADER = b"x-freshrec-forwarded-by"
#: GET paths answered by the writer: its counters (events accepted, ingestion rate) are the server's
WRITER_PATHS = frozenset({"/metrics", "/dashboard/stream", "/dashboard/pulse"})
#: query parameters that make a recommendation request log an exposure (a journal record)
JOURNALING_PARAMS = frozenset({"experiment", "surface"})
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host"})


class ReaderRuntime(Runtime):
    """The runtime of a reader process: local reads, no writes, no schedules (the writer trains)."""

    def __init__(self, engine: Engine, follower: Follower) -> None:
        super().__init__(engine, None)
        self.follower = follower

    def before_read(self) -> None:
        self.follower.follow()

    def status(self) -> dict[str, Any]:
        self.follower.follow()
        return {"mode": "embedded", "process": "reader", "data_dir": str(self.follower.data_dir)}

    async def start(self) -> None:
        """Nothing: the writer declares the configured experiments."""

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self.housekeeping()]

    async def journal_and_apply(self, records: list[dict[str, Any]], apply: Callable[[], Any]) -> Any:
        raise RuntimeError("a reader process does not write: the request should have gone to the writer")


def forwarded(scope: Scope) -> bool:
    """Whether a reader hands this request to the writer."""
    method = scope["method"]
    path: str = scope["path"]
    if method not in ("GET", "HEAD") or path in WRITER_PATHS or path.startswith("/v1/admin/"):
        return True
    if path.endswith("/recommendations") and scope["query_string"]:
        query = scope["query_string"].decode("latin-1")
        return any(name in JOURNALING_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True))
    return False


class Forwarder:
    """Sends a request to the writer's Unix socket and streams its answer back unchanged."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._client: httpx.AsyncClient | None = None
        self.header = (FORWARDED_HEADER, str(os.getpid()).encode())

    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made in the serving event loop
            transport = httpx.AsyncHTTPTransport(uds=self.socket_path)
            self._client = httpx.AsyncClient(
                transport=transport, base_url="http://writer", timeout=httpx.Timeout(None)
            )
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        query = scope["query_string"]
        target = scope["raw_path"] if scope.get("raw_path") else scope["path"].encode()
        url = (target + (b"?" + query if query else b"")).decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
        client = self.client()
        request = client.build_request(scope["method"], url, headers=headers, content=b"".join(chunks))
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            body = b'{"error":"the writer process is unreachable, try again shortly: %s","details":[]}' % (
                str(exc).encode().replace(b'"', b"'")
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        try:
            raw = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            length = response.headers.get("content-length")
            if length is not None:
                raw.append((b"content-length", length.encode()))
            raw.append(self.header)
            await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class WorkerFront:
    """Every serving process's outermost ASGI layer (see the module's docstring)."""

    def __init__(self, app: ASGIApp, forwarder: Forwarder | None = None) -> None:
        self.app = app
        self.forwarder = forwarder
        self.header = (WORKER_HEADER, str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.forwarder is not None and forwarded(scope):
            await self.forwarder(scope, receive, send)
            return
        header = self.header

        async def named(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, named)
