"""``POST /v1/events``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from freshrec.api.deps import read_body, require_write, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS, Accepted
from freshrec.errors import InvalidInput
from freshrec.events import EventIn, parse_event_payload

router = APIRouter(tags=["events"])

_EVENT_SCHEMA = EventIn.model_json_schema(ref_template="#/components/schemas/{model}")
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]}
            }
        },
    }
}


@router.post(
    "/v1/events",
    status_code=202,
    dependencies=[Depends(require_write)],
    responses={202: {"model": Accepted}, **ERRORS},
    openapi_extra=_BODY,
    summary="Post one event or an array of events (all-or-nothing)",
)
async def post_events(request: Request) -> JSON:
    rt = runtime(request)
    settings = rt.engine.settings.events
    body = await read_body(request, settings.max_body_bytes)
    try:
        events = parse_event_payload(body, settings)
    except InvalidInput:
        rt.metrics.events_rejected.inc()
        raise
    duplicates = await rt.accept_events(events)
    # SPEC §1: a re-sent event is still a success (accepted); ``duplicates`` says how many were
    answer = {"accepted": len(events), "duplicates": duplicates, "event_ids": [e.event_id for e in events]}
    return JSON(answer, status_code=202)
