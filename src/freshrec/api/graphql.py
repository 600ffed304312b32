"""GraphQL at ``/graphql`` with the DataSQRL clickstream example's API (GraphiQL in the browser).

Queries ``Recommendation(url, limit)`` (the co-visit view, most frequent first) and ``SimilarContent(userid)``
(content closest to the user's interest centroid); mutations ``Content(...)`` and ``Clickstream(...)`` add
data through the same durable, validated path as the REST API.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.types import Info

from freshrec.catalog import validate_items
from freshrec.errors import InvalidInput
from freshrec.events import validate_events

if TYPE_CHECKING:
    from freshrec.api.app import Runtime


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
    details = "; ".join(f"{d.field}: {d.message}" for d in exc.details)
    return GraphQLError(f"{exc.error}{' — ' + details if details else ''}")


@strawberry.type
class Query:
    @strawberry.field(name="Recommendation", description="Pages visited within 10 minutes after `url`.")
    def recommendation(self, info: Info[Any, Any], url: str, limit: int = 10) -> list[Recommendation]:
        engine = _runtime(info).engine
        return [
            Recommendation(recommendation=item_id, frequency=frequency)
            for item_id, frequency in engine.co_visits_of(url, limit)
        ]

    @strawberry.field(name="SimilarContent", description="Content closest to the user's interest centroid.")
    def similar_content(self, info: Info[Any, Any], userid: str, limit: int = 10) -> list[SimilarContent]:
        engine = _runtime(info).engine
        out = []
        for item_id, similarity in engine.similar_content_for_user(userid, limit):
            item = engine.catalog.get(item_id)
            url = item.url if item is not None and item.url else item_id
            out.append(
                SimilarContent(url=url, title=None if item is None else item.title, similarity=similarity)
            )
        return out


@strawberry.type
class Mutation:
    @strawberry.mutation(name="Clickstream", description="Record a click of `userid` on `url`.")
    async def clickstream(self, info: Info[Any, Any], click: ClickEvent) -> ClickResponse:
        rt = _runtime(info)
        raw: dict[str, Any] = {"user_id": click.userid, "item_id": click.url, "type": "click"}
        if click.event_time is not None:
            raw["timestamp"] = click.event_time
        try:
            events = validate_events(raw, rt.engine.settings.events)
        except InvalidInput as exc:
            raise _graphql_error(exc) from None
        await rt.write_events(events)
        return ClickResponse(source_time=_rfc3339(events[0].ts), event_id=events[0].event_id)

    @strawberry.mutation(name="Content", description="Add or replace a page (its embedding is computed).")
    async def content(self, info: Info[Any, Any], event: ContentInput) -> ContentResponse:
        rt = _runtime(info)
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


schema = strawberry.Schema(query=Query, mutation=Mutation)


def graphql_router() -> GraphQLRouter[Any, Any]:
    return GraphQLRouter(schema, path="/graphql", graphql_ide="graphiql")
