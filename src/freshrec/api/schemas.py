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


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description, **extra}


#: every answer a route may give besides its own success (the limits: docs/security.md)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The request cannot be read."),
    401: _error("Keys are configured and the request has no API key, or an unknown one."),
    403: _error("The API key's role is too small for this operation."),
    404: _error("No such item, user view, strategy or experiment."),
    405: _error("The method is not allowed here (e.g. a GraphQL mutation sent with GET)."),
    409: _error("The operation conflicts with the server's state (e.g. CF disabled, a training running)."),
    413: _error(
        "The body is too large (`events.max_body_bytes`, `server.limits.max_items_body_bytes`) or holds "
        "too many events or items (`events.max_batch`, `server.limits.max_items_batch`)."
    ),
    414: _error("The query string is longer than `server.limits.max_query_bytes`."),
    415: _error("The body's content type is not one this route reads."),
    422: _error(
        "Invalid input (every problem listed in `details`): a field too long, a wrong type, `k` above "
        "`strategies.max_k`, ..."
    ),
    429: _error(
        "Rate limit: more than `server.limits.rate_per_second` requests per second (after a burst of "
        "`server.limits.rate_burst`) from this API key, or from this address without a key.",
        headers={"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    ),
    503: _error(
        "The state store is unreachable (distributed mode), or more than `server.limits.max_connections` "
        "requests are in flight (then the body is plain text).",
        headers={"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    ),
}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of ``model`` with its ``$defs`` written in place (for a route's ``openapi_extra``).

    Routes that read their body themselves (after the role check, so that a request without a key gets
    401 whatever its body) document it with this.
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return inline(schema)  # type: ignore[no-any-return]
