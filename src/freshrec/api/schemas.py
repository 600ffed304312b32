"""Response shapes, for the OpenAPI document (handlers return plain JSON for speed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    index: int
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    details: list[ErrorDetail]


class Accepted(BaseModel):
    accepted: int = Field(description="Events acknowledged, re-sent ones included (SPEC §1).")
    duplicates: int | None = Field(
        description="How many of them had an event_id applied before (changed nothing); null in "
        "distributed mode, where the workers de-duplicate after the acknowledgement."
    )
    event_ids: list[str]


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    reasons: dict[str, Any] | None = None


class Recommendations(BaseModel):
    user_id: str
    strategy: str
    request_id: str
    experiment: str | None = Field(None, description="With ?experiment= or ?surface=: the experiment.")
    variant: str | None = Field(
        None, description="The user's variant; null when the experiment has ended (its baseline answered)."
    )
    items: list[RecommendedItem]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    413: {"model": ErrorBody},
    422: {"model": ErrorBody},
}
