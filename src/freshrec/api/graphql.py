"""GraphQL at ``/graphql`` with the DataSQRL clickstream example's API (GraphiQL in the browser).

Queries ``Recommendation(url, limit)`` (the co-visit view, most frequent first) and ``SimilarContent(userid)``
(content closest to the user's interest centroid); mutations ``Content(...)`` and ``Clickstream(...)`` add
data through the same durable, validated path as the REST API.

Every field asks for the role of its REST twin (queries read, mutations write) through the same check as
the REST routes; a request without it gets HTTP 401/403 and no data.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import strawberry
from fastapi import Depends, Request
from graphql import GraphQLError
from starlette.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.permission import BasePermission
from strawberry.types import ExecutionContext, Info

from freshrec.api.auth import Role, presented_key
from freshrec.api.deps import limit_graphql_body
from freshrec.api.docs import graphiql_html
from freshrec.api.guard import guard_of
from freshrec.api.problems import listed
from freshrec.catalog import validate_items
from freshrec.errors import InvalidInput
from freshrec.events import ITEM_ID_MAX, USER_ID_MAX, id_problem, validate_events

if TYPE_CHECKING:
    from freshrec.api.app import Runtime

log = logging.getLogger(__name__)


@strawberry.type
class Recommendation:
    recommendation: str
    frequency: int


@strawberry.type
class SimilarContent:
    url: str
    title: str | None
    similarity: float


@strawberry.input
class ClickEvent:
    userid: str
    url: str
    event_time: str | None = None


@strawberry.type
class ClickResponse:
    source_time: str = strawberry.field(name="_source_time")
    event_id: str


@strawberry.input
class ContentInput:
    url: str
    title: str | None = None
    text: str | None = None


@strawberry.type
class ContentResponse:
    url: str
    source_time: str = strawberry.field(name="_source_time")


def _runtime(info: Info[Any, Any]) -> Runtime:
    return info.context["request"].app.state.runtime  # type: ignore[no-any-return]


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _graphql_error(exc: InvalidInput) -> GraphQLError:
    shown, error = listed(exc)
    details = "; ".join(f"{d.field}: {d.message}" for d in shown)
    return GraphQLError(f"{error}{' — ' + details if details else ''}")


def _checked_id(value: str, argument: str, max_length: int) -> str:
    problem = id_problem(value, max_length)
    if problem is not None:
        raise GraphQLError(f"invalid {argument}: {problem}")
    return value


class _NeedsRole(BasePermission):
    """The REST routes' role check (the app's key ring) for one GraphQL field."""

    role: Role

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        request: Request = info.context["request"]
        try:
            guard = guard_of(request.app.state, _runtime(info).engine.settings.server)
            guard.ring.check(presented_key(request.headers), self.role)
        except InvalidInput as exc:
            info.context["response"].status_code = exc.status
            code = "UNAUTHENTICATED" if exc.status == 401 else "FORBIDDEN"
            raise GraphQLError(exc.error, extensions={"code": code}) from None
        if self.role is Role.READ:
            _runtime(info).before_read()
        return True


class Reads(_NeedsRole):
    role = Role.READ


class Writes(_NeedsRole):
    role = Role.WRITE


@strawberry.type
class Query:
    @strawberry.field(
        name="Recommendation",
        description="Pages visited within 10 minutes after `url`.",
        permission_classes=[Reads],
    )
    def recommendation(self, info: Info[Any, Any], url: str, limit: int = 10) -> list[Recommendation]:
        engine = _runtime(info).engine
        return [
            Recommendation(recommendation=item_id, frequency=frequency)
            for item_id, frequency in engine.co_visits_of(_checked_id(url, "url", ITEM_ID_MAX), limit)
        ]

    @strawberry.field(
        name="SimilarContent",
        description="Content closest to the user's interest centroid; pages the user has already visited "
        "are left out unless `includeVisited` is true (the DataSQRL example's SQL keeps them).",
        permission_classes=[Reads],
    )
    def similar_content(
        self, info: Info[Any, Any], userid: str, limit: int = 10, include_visited: bool = False
    ) -> list[SimilarContent]:
        engine = _runtime(info).engine
        user = _checked_id(userid, "userid", USER_ID_MAX)
        visited = (
            set() if include_visited else {row["item_id"] for row in engine.view_rows("user_history", user)}
        )
        out = []
        for item_id, similarity in engine.similar_content_for_user(user, limit + len(visited)):
            if item_id in visited:
                continue
            item = engine.catalog.get(item_id)
            url = item.url if item is not None and item.url else item_id
            out.append(
                SimilarContent(url=url, title=None if item is None else item.title, similarity=similarity)
            )
            if len(out) >= limit:
                break
        return out


@strawberry.type
class Mutation:
    @strawberry.mutation(
        name="Clickstream", description="Record a click of `userid` on `url`.", permission_classes=[Writes]
    )
    async def clickstream(self, info: Info[Any, Any], click: ClickEvent) -> ClickResponse:
        rt = _runtime(info)
        raw: dict[str, Any] = {"user_id": click.userid, "item_id": click.url, "type": "click"}
        if click.event_time is not None:
            raw["timestamp"] = click.event_time
        try:
            events = validate_events(raw, rt.engine.settings.events)
        except InvalidInput as exc:
            rt.metrics.events_rejected.inc()
            raise _graphql_error(exc) from None
        await rt.accept_events(events)
        return ClickResponse(source_time=_rfc3339(events[0].ts), event_id=events[0].event_id)

    @strawberry.mutation(
        name="Content",
        description="Add or replace a page (its embedding is computed).",
        permission_classes=[Writes],
    )
    async def content(self, info: Info[Any, Any], event: ContentInput) -> ContentResponse:
        rt = _runtime(info)
        _checked_id(event.url, "url", ITEM_ID_MAX)
        try:
            items = validate_items(
                [{"item_id": event.url, "url": event.url, "title": event.title, "text": event.text}]
            )
        except InvalidInput as exc:
            raise _graphql_error(exc) from None
        stamp = time.time()
        prepared = await rt.prepare_items(items)
        await rt.write_items(prepared, stamp)
        return ContentResponse(url=event.url, source_time=_rfc3339(stamp))


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """The caller's mistakes (invalid document or input, no key) in one line; a bug with its traceback."""
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, GraphQLError):
                log.info("GraphQL request refused: %s", error.message)
            else:
                log.error("GraphQL field %s failed", error.path, exc_info=original)


schema = _Schema(query=Query, mutation=Mutation)


class _Router(GraphQLRouter[Any, Any]):
    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html(request.scope.get("root_path", "")))


def graphql_router() -> GraphQLRouter[Any, Any]:
    """The router; its dependency applies the query, rate and body limits before anything is parsed."""
    return _Router(
        schema,
        path="/graphql",
        graphql_ide="graphiql",
        dependencies=[Depends(limit_graphql_body)],
    )
