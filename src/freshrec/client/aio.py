"""``AsyncClient``: :class:`freshrec.client.Client` for asyncio, the same methods awaited.

>>> from freshrec.client import AsyncClient
>>> async def main() -> None:  # doctest: +SKIP
...     async with AsyncClient("http://127.0.0.1:8000") as client:
...         recs = await client.recommendations("u-42", k=5)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from freshrec.client.models import (
    Accepted,
    FreshrecError,
    Recommendations,
    Rejected,
    ViewRows,
    recommendations_of,
)
from freshrec.client.requests import (
    RETRY_STATUSES,
    RetryPolicy,
    accepted_of,
    decoded,
    headers,
    path_id,
    recommendation_params,
    with_ids,
)
from freshrec.client.sender import AsyncEventSender


class AsyncClient:
    """An asyncio client (one connection pool), an async context manager."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        **httpx_options: Any,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers(api_key), timeout=timeout, **httpx_options
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call, retried on 429/503 (after ``Retry-After`` when given) and on connection errors."""
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.retry.retries:
                    raise FreshrecError(None, f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self.retry.delay(attempt, None))
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retry.retries:
                    return response
                await asyncio.sleep(self.retry.delay(attempt, response))
            attempt += 1

    # -- writes -------------------------------------------------------------------------------------
    async def send_events(self, events: Iterable[Mapping[str, Any]]) -> Accepted:
        """Post events (all-or-nothing; up to the server's batch limit). A 422 raises with every problem."""
        body = decoded(await self.request("POST", "/v1/events", json=with_ids(events)), ok=(202,))
        return accepted_of(body)

    async def send_event(self, **event: Any) -> Accepted:
        return await self.send_events([event])

    async def upsert_items(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert or replace items (all-or-nothing); their ids."""
        body = decoded(await self.request("POST", "/v1/items", json=[dict(i) for i in items]))
        return list(body["item_ids"])

    async def put_item(self, item_id: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = decoded(
            await self.request("PUT", f"/v1/items/{path_id(item_id)}", json=fields)
        )
        return body

    async def get_item(self, item_id: str) -> dict[str, Any] | None:
        response = await self.request("GET", f"/v1/items/{path_id(item_id)}")
        if response.status_code == 404:
            return None
        body: dict[str, Any] = decoded(response)
        return body

    async def delete_item(self, item_id: str) -> bool:
        response = await self.request("DELETE", f"/v1/items/{path_id(item_id)}")
        if response.status_code == 404:
            return False
        decoded(response)
        return True

    def sender(
        self,
        max_events: int = 500,
        max_seconds: float = 1.0,
        on_rejected: Callable[[Rejected], None] | None = None,
    ) -> AsyncEventSender:
        """A buffered sender (call it inside the event loop): batches of ``max_events`` or every
        ``max_seconds``."""
        return AsyncEventSender(self.send_events, max_events, max_seconds, on_rejected)

    # -- reads --------------------------------------------------------------------------------------
    async def recommendations(
        self,
        user_id: str,
        k: int = 20,
        strategy: str | None = None,
        category: str | None = None,
        explain: bool = False,
        exclude_purchased: bool = True,
        experiment: str | None = None,
    ) -> Recommendations:
        """``GET /v1/users/{user_id}/recommendations``; ``experiment`` is passed on as a query parameter."""
        params = recommendation_params(k, strategy, category, explain, exclude_purchased, experiment)
        path = f"/v1/users/{path_id(user_id)}/recommendations"
        return recommendations_of(decoded(await self.request("GET", path, params=params)))

    async def related(
        self,
        item_id: str,
        k: int = 10,
        strategy: str = "covisit",
        user_id: str | None = None,
        category: str | None = None,
        explain: bool = False,
        experiment: str | None = None,
    ) -> Recommendations:
        """``GET /v1/items/{item_id}/recommendations``: items related to an item."""
        params = recommendation_params(k, strategy, category, explain, None, experiment, user_id)
        path = f"/v1/items/{path_id(item_id)}/recommendations"
        return recommendations_of(decoded(await self.request("GET", path, params=params)))

    async def profile(self, user_id: str) -> dict[str, Any]:
        body: dict[str, Any] = decoded(await self.request("GET", f"/v1/users/{path_id(user_id)}/profile"))
        return body

    async def trending(self, k: int = 20, category: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"k": k, **({"category": category} if category else {})}
        body: dict[str, Any] = decoded(await self.request("GET", "/v1/trending", params=params))
        return body

    async def view(self, view: str, limit: int = 1000, offset: int = 0, **key: str) -> ViewRows:
        """Rows of a view; ``key`` is ``user_id=``, ``item_id=`` or ``category=`` (the view's key)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, **key}
        body = decoded(await self.request("GET", f"/v1/views/{path_id(view)}", params=params))
        return ViewRows(body["view"], body.get("keyed_by"), body["rows"], int(body["total"]))

    async def health(self) -> dict[str, Any]:
        body: dict[str, Any] = decoded(await self.request("GET", "/health"))
        return body
