"""A raw ASGI lane in front of the FastAPI app for the reads served on every page load.

:class:`FastLane` answers ``GET /v1/users/{user_id}/recommendations``, ``GET /v1/items/{item_id}/
recommendations`` and ``GET /health`` itself: the path and query are parsed by hand, the same guard
(``app.state.guard``) admits the request, the same engine call the route makes computes the answer, which
is encoded once by orjson and sent with the headers, status codes and error bodies the FastAPI route gives;
the request is recorded in the same latency histogram, under the route's template.

It takes only the requests it can parse with certainty: a parameter that is not a plain decimal or one of
pydantic's boolean words, an experiment or surface (their exposure is journaled), a ``HEAD``, any other
path: all go to the FastAPI app untouched, so validation errors (422), the OpenAPI document, GraphQL and
every write stay FastAPI's. ``tests/integration/test_fast_lane.py`` compares both byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from freshrec.api.auth import Role
from freshrec.api.deps import DEGRADED_HEADER, path_id, request_id
from freshrec.api.guard import guard_of
from freshrec.api.problems import capped_body
from freshrec.api.routes.meta import health_body
from freshrec.api.routes.related import related_answer
from freshrec.errors import InvalidInput, NotFound
from freshrec.events import ITEM_ID_MAX, USER_ID_MAX

USERS, ITEMS, TAIL = "/v1/users/", "/v1/items/", "/recommendations"
#: the route templates the latency histogram knows these requests by
USER_ROUTE = "/v1/users/{user_id:path}/recommendations"
ITEM_ROUTE = "/v1/items/{item_id:path}/recommendations"
HEALTH_ROUTE = "/health"
#: pydantic's words for a boolean query parameter (other spellings go to FastAPI)
_BOOLS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}
_USER_PARAMS = frozenset({"k", "strategy", "category", "explain", "exclude_purchased"})
_ITEM_PARAMS = frozenset({"k", "strategy", "user_id", "category", "explain"})
_DEGRADED = DEGRADED_HEADER.lower().encode("latin-1")
_JSON_TYPE = (b"content-type", b"application/json")


class Fallback(Exception):
    """The request is not one the lane answers with certainty: FastAPI answers it."""


def _query(scope: Scope, known: frozenset[str]) -> dict[str, str]:
    """The query's parameters (the last value wins, as in Starlette); unknown names are ignored."""
    raw: bytes = scope["query_string"]
    if not raw:
        return {}
    return {
        name: value
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        if name in known or name in ("experiment", "surface")
    }


def _k(params: dict[str, str], default: int) -> int:
    text = params.get("k")
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or text[0] == "0":
        raise Fallback  # FastAPI validates (and refuses) anything else
    return int(text)


def _flag(params: dict[str, str], name: str, default: bool) -> bool:
    text = params.get(name)
    if text is None:
        return default
    value = _BOOLS.get(text)
    if value is None:
        raise Fallback
    return value


class FastLane:
    """The outermost layer of the app (inside :class:`~freshrec.workers.reader.WorkerFront`)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.runtime = app.state.runtime
        self.guard = guard_of(app.state, self.runtime.engine.settings.server)
        self.histogram = self.runtime.metrics.requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        answer: Callable[[Scope], tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]]
        if path == HEALTH_ROUTE:
            answer, route = self.health, HEALTH_ROUTE
        elif path.endswith(TAIL) and path.startswith(USERS):
            answer, route = self.user_recommendations, USER_ROUTE
        elif path.endswith(TAIL) and path.startswith(ITEMS):
            answer, route = self.item_recommendations, ITEM_ROUTE
        else:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        try:
            status, body, headers = answer(scope)
        except Fallback:
            await self.app(scope, receive, send)  # FastAPI records this request itself
            return
        except InvalidInput as exc:
            status, body = exc.status, capped_body(exc)
            headers = [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()
            ]
        except NotFound as exc:
            status, body, headers = 404, {"error": f"not found: {exc.what}", "details": []}, []
        except self.runtime.unavailable_errors as exc:
            text = f"the state store is unreachable, try again shortly: {exc}"
            status, body, headers = 503, {"error": text, "details": []}, [(b"retry-after", b"1")]
        except BaseException:
            self.histogram.labels("GET", route, "500").observe(time.perf_counter() - started)
            raise
        try:
            content = orjson.dumps(body)
            headers.append((b"content-length", str(len(content)).encode()))
            headers.append(_JSON_TYPE)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        finally:
            self.histogram.labels("GET", route, str(status)).observe(time.perf_counter() - started)

    def _admit(self, scope: Scope) -> None:
        """``require_read``: query and rate limits, the read role, then the runtime's mirrors caught up."""
        client = scope.get("client")
        self.guard.admit(
            Headers(scope=scope), client[0] if client else None, scope["query_string"], Role.READ
        )
        self.runtime.before_read()

    def user_recommendations(self, scope: Scope) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        """What ``routes.users.user_recommendations`` answers (without an experiment or surface)."""
        path: str = scope["path"]
        user_id = path[len(USERS) : -len(TAIL)]
        params = _query(scope, _USER_PARAMS)
        if "experiment" in params or "surface" in params:
            raise Fallback
        k = _k(params, 20)
        explain = _flag(params, "explain", False)
        exclude_purchased = _flag(params, "exclude_purchased", True)
        self._admit(scope)
        path_id(user_id, "user_id", USER_ID_MAX)
        rt = self.runtime
        options = {
            "k": k,
            "category": params.get("category") or None,
            "exclude_purchased": exclude_purchased,
            "explain": explain,
        }
        rid = request_id()
        name = params.get("strategy") or rt.engine.settings.strategies.default
        recs, degraded = rt.recommend(user_id, name, **options)
        items = (
            [{"item_id": r.item_id, "score": r.score, "reasons": r.reasons} for r in recs]
            if explain
            else [{"item_id": r.item_id, "score": r.score} for r in recs]
        )
        body = {"user_id": user_id, "strategy": name, "request_id": rid, "items": items}
        if degraded is None:
            return 200, body, []
        return 200, {**body, "degraded": degraded}, [(_DEGRADED, degraded.encode("latin-1"))]

    def item_recommendations(self, scope: Scope) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        """What ``routes.related.item_recommendations`` answers."""
        path: str = scope["path"]
        item_id = path[len(ITEMS) : -len(TAIL)]
        params = _query(scope, _ITEM_PARAMS)
        k = _k(params, 10)
        explain = _flag(params, "explain", False)
        strategy = params.get("strategy", "covisit")
        user_id = params.get("user_id")
        self._admit(scope)
        path_id(item_id, "item_id", ITEM_ID_MAX)
        if user_id is not None:
            path_id(user_id, "user_id", USER_ID_MAX)
        body = related_answer(
            self.runtime.engine, item_id, strategy, k, user_id, params.get("category"), explain
        )
        return 200, body, []

    def health(self, scope: Scope) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        """What ``routes.meta.health`` answers (no guard: liveness is open)."""
        return 200, health_body(self.runtime), []
