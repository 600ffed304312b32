"""What the client returns: typed answers of the REST API, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a rejected request (SPEC §1): which element, which field, what is wrong."""

    index: int
    field: str
    message: str


class FreshrecError(Exception):
    """The server answered an error (4xx/5xx) or could not be reached after every retry."""

    def __init__(self, status: int | None, error: str, details: list[Problem] | None = None) -> None:
        super().__init__(f"{status}: {error}" if status is not None else error)
        self.status = status
        self.error = error
        self.details = details or []


@dataclass(frozen=True, slots=True)
class Accepted:
    """``202`` of ``POST /v1/events``: every event is durable and applied (``duplicates`` were before)."""

    accepted: int
    duplicates: int
    event_ids: list[str]


@dataclass(frozen=True, slots=True)
class Recommendation:
    item_id: str
    score: float
    reasons: dict[str, Any] | None = None
    frequency: int | None = None  # item recommendations by covisit


@dataclass(frozen=True, slots=True)
class Recommendations:
    """Top-k items for a user (``user_id``) or related to an item (``item_id``)."""

    strategy: str
    request_id: str
    items: list[Recommendation]
    user_id: str | None = None
    item_id: str | None = None
    degraded: str | None = None  # set when the server answered from a fallback (state store down)

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.items]


@dataclass(frozen=True, slots=True)
class ViewRows:
    view: str
    keyed_by: str | None
    rows: list[dict[str, Any]]
    total: int


@dataclass(slots=True)
class Rejected:
    """Events a sender could not store, with why: the server's problems, or the last error."""

    events: list[dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None


def error_of(status: int, body: Any, text: str) -> FreshrecError:
    if isinstance(body, dict) and "error" in body:
        details = [
            Problem(int(d.get("index", 0)), str(d.get("field", "")), str(d.get("message", "")))
            for d in body.get("details") or []
            if isinstance(d, dict)
        ]
        return FreshrecError(status, str(body["error"]), details)
    return FreshrecError(status, text[:500] or "no body")


def recommendations_of(body: dict[str, Any]) -> Recommendations:
    return Recommendations(
        strategy=body["strategy"],
        request_id=body.get("request_id", ""),
        items=[
            Recommendation(i["item_id"], float(i["score"]), i.get("reasons"), i.get("frequency"))
            for i in body["items"]
        ],
        user_id=body.get("user_id"),
        item_id=body.get("item_id"),
        degraded=body.get("degraded"),
    )
