"""What the sync and async clients share: request building, retry policy, answers decoding."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from freshrec.client.models import Accepted, error_of

#: answers worth retrying: the server is overloaded (429) or its state store is unreachable (503)
RETRY_STATUSES = frozenset({429, 503})
#: the longest Retry-After the client will wait for
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` more attempts after the first, waiting ``base · 2^n`` (jittered, at most ``cap``) seconds,
    or what ``Retry-After`` says."""

    retries: int = 3
    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            told = retry_after(response)
            if told is not None:
                return min(told, MAX_RETRY_AFTER)
        backoff: float = min(self.cap, self.base * 2.0**attempt)
        return backoff * (0.5 + random.random() / 2)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def path_id(value: str) -> str:
    """An id in a path (a URL is a fine item id): percent-encoded."""
    return quote(value, safe="")


def with_ids(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events with an ``event_id`` each (given one when absent), so that a retried post changes nothing."""
    out = []
    for event in events:
        record = dict(event)
        if not record.get("event_id"):
            record["event_id"] = uuid.uuid4().hex
        out.append(record)
    return out


def recommendation_params(
    k: int,
    strategy: str | None,
    category: str | None,
    explain: bool,
    exclude_purchased: bool | None,
    experiment: str | None,
    user_id: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"k": k, "explain": "true" if explain else "false"}
    optional = {"strategy": strategy, "category": category, "experiment": experiment, "user_id": user_id}
    params.update({k: v for k, v in optional.items() if v is not None})
    if exclude_purchased is not None:
        params["exclude_purchased"] = "true" if exclude_purchased else "false"
    return params


def decoded(response: httpx.Response, ok: Iterable[int] = (200, 202)) -> Any:
    """The JSON body of a successful answer, or the :class:`FreshrecError` it carries."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code not in set(ok):
        raise error_of(response.status_code, body, response.text)
    return body


def accepted_of(body: dict[str, Any]) -> Accepted:
    return Accepted(int(body["accepted"]), int(body.get("duplicates", 0)), list(body["event_ids"]))
