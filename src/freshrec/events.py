"""Events: what users do (SPEC §1), how they are validated, and their in-engine form.

A batch is validated whole: every problem of every event is collected, and a batch with any problem is
rejected without storing anything.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from freshrec.config import EventSettings
from freshrec.errors import FieldProblem, InvalidInput


@dataclass(slots=True)
class Event:
    """An accepted event, as the views see it. ``ts`` is unix seconds."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    ts: float
    session_id: str | None = None
    dwell_seconds: float | None = None
    category: str | None = None
    subcategory: str | None = None
    brand: str | None = None
    content_type: str | None = None
    price: float | None = None
    properties: dict[str, Any] | None = None
    #: the recommendation answer this event responds to (credits that exposure of an experiment)
    request_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The JSON form written to the durable log."""
        record: dict[str, Any] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "type": self.type,
            "timestamp": self.ts,
        }
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        """Inverse of :meth:`to_record` (records in the log were validated when written)."""
        return cls(
            event_id=record["event_id"],
            user_id=record["user_id"],
            item_id=record["item_id"],
            type=record["type"],
            ts=float(record["timestamp"]),
            **{name: record.get(name) for name in _OPTIONAL_FIELDS},
        )


_OPTIONAL_FIELDS = (
    "session_id",
    "dwell_seconds",
    "category",
    "subcategory",
    "brand",
    "content_type",
    "price",
    "properties",
    "request_id",
)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
USER_ID_MAX = 256
ITEM_ID_MAX = 1024


def id_problem(value: str, max_length: int) -> str | None:
    """What is wrong with an id (``user_id``, ``item_id``, ...), or None: empty, too long, control characters.

    >>> id_problem("u\\x00", 256)
    'must not contain control characters (found U+0000)'
    """
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"is {len(value)} characters long; at most {max_length} are accepted"
    found = _CONTROL.search(value)
    if found is not None:
        return f"must not contain control characters (found U+{ord(found.group()):04X})"
    return None


class EventIn(BaseModel):
    """An event as posted to ``POST /v1/events``."""

    # strict: a JSON string is not a number and 0 is not false
    model_config = ConfigDict(extra="forbid", strict=True)

    event_id: str | None = Field(None, min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=USER_ID_MAX)
    item_id: str = Field(min_length=1, max_length=ITEM_ID_MAX)
    type: str = Field(min_length=1, max_length=64, description="One of the configured event types.")
    timestamp: float | str | None = Field(
        None, description="RFC 3339 string with offset, or unix seconds; default = time received."
    )
    session_id: str | None = Field(None, max_length=256)
    dwell_seconds: float | None = Field(None, ge=0, allow_inf_nan=False)
    category: str | None = Field(None, max_length=256)
    subcategory: str | None = Field(None, max_length=256)
    brand: str | None = Field(None, max_length=256)
    content_type: str | None = Field(None, max_length=256)
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    properties: dict[str, Any] | None = None
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="The `request_id` of the recommendation answer this event responds to (experiments).",
    )

    @field_validator("user_id", "item_id", "session_id", "request_id")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        found = None if value is None else _CONTROL.search(value)
        if found is not None:
            raise ValueError(f"must not contain control characters (found U+{ord(found.group()):04X})")
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("timestamp must be an RFC 3339 string or a number of unix seconds")
        if isinstance(value, int | float):
            if not math.isfinite(value) or value < 0:
                raise ValueError("timestamp must be a finite, non-negative number of unix seconds")
            return float(value)
        if isinstance(value, str):
            return parse_rfc3339(value)
        if value is None:
            return None
        raise ValueError("timestamp must be an RFC 3339 string or a number of unix seconds")


def parse_rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp; an offset (``Z`` or ``+hh:mm``) is required.

    >>> parse_rfc3339("2024-01-02T00:00:00Z")
    1704153600.0
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset; add 'Z' or '+hh:mm'")
    return parsed.timestamp()


_BATCH = TypeAdapter(list[EventIn])
_ONE = TypeAdapter(EventIn)


def parse_event_payload(
    body: bytes, settings: EventSettings, received_at: float | None = None
) -> list[Event]:
    """Events of a request body (one object or an array), or :class:`InvalidInput` listing every problem."""
    if len(body) > settings.max_body_bytes:
        raise InvalidInput(
            f"request body is {len(body)} bytes; the limit is {settings.max_body_bytes}",
            status=413,
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    return validate_events(payload, settings, received_at)


def validate_events(payload: Any, settings: EventSettings, received_at: float | None = None) -> list[Event]:
    """Validate a decoded payload (one event object or a list of them) into events."""
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    if not isinstance(items, list):
        raise InvalidInput("expected an event object or an array of event objects")
    if not items:
        raise InvalidInput("the array of events is empty")
    if len(items) > settings.max_batch:
        raise InvalidInput(
            f"{len(items)} events in one request; the limit is {settings.max_batch}", status=413
        )
    now = time.time() if received_at is None else received_at
    from freshrec.events_fast import fast_events  # beside this module; it imports this one

    fast = fast_events(items, settings, now)
    if fast is not None:
        return fast
    return _validate_fully(items, single, settings, now)


def _validate_fully(items: list[Any], single: bool, settings: EventSettings, now: float) -> list[Event]:
    """Validation through :class:`EventIn`, collecting every problem of every event."""
    problems: list[FieldProblem] = []
    models: list[EventIn | None]
    try:
        models = list(_BATCH.validate_python(items))
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, single))
        failed = {p.index for p in problems}
        models = [None if i in failed else _ONE.validate_python(raw) for i, raw in enumerate(items)]
    schema_bad: dict[int, set[str]] = {}
    for problem in problems:
        schema_bad.setdefault(problem.index, set()).add(problem.field)
    events: list[Event] = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            continue
        model = models[index]
        bad = schema_bad.get(index, set())
        ts = _check_semantics(index, raw, model, bad, settings, now, problems)
        if model is None or ts is None:
            continue
        events.append(
            Event(
                event_id=model.event_id or uuid.uuid4().hex,
                user_id=model.user_id,
                item_id=model.item_id,
                type=model.type,
                ts=ts,
                session_id=model.session_id,
                dwell_seconds=model.dwell_seconds,
                category=model.category,
                subcategory=model.subcategory,
                brand=model.brand,
                content_type=model.content_type,
                price=model.price,
                properties=model.properties,
                request_id=model.request_id,
            )
        )
    if problems:
        problems.sort(key=lambda p: (p.index, p.field))
        raise InvalidInput(f"{len(problems)} problem(s) in the request; nothing was stored", problems)
    return events


def _check_semantics(
    index: int,
    raw: dict[str, Any],
    model: EventIn | None,
    bad: set[str],
    settings: EventSettings,
    now: float,
    problems: list[FieldProblem],
) -> float | None:
    """Checks that need the settings (type, future, size), also on events whose schema check failed.

    Returns the event time, or None when it could not be read.
    """
    kind = model.type if model is not None else raw.get("type")
    if "type" not in bad and isinstance(kind, str) and kind not in settings.weights:
        known = ", ".join(sorted(settings.weights))
        problems.append(FieldProblem(index, "type", f"unknown event type {kind!r}; expected one of: {known}"))
    ts: float | None = None
    if model is not None:
        ts = now if model.timestamp is None else float(model.timestamp)
    elif "timestamp" not in bad:
        try:
            value = EventIn._timestamp(raw.get("timestamp"))
            ts = now if value is None else float(value)
        except ValueError:
            ts = None
    if ts is not None and ts > now + settings.max_future_seconds:
        ahead = ts - now
        raw_ts = raw.get("timestamp")
        if ahead <= 365 * 86_400:
            told = f"{ahead:.0f} s in the future"
        elif _looks_like_milliseconds(raw_ts, now + settings.max_future_seconds):
            told = "years in the future (milliseconds? timestamps are unix seconds)"
        else:
            told = f"{ahead / (365.25 * 86_400):.0f} years in the future"
        problems.append(
            FieldProblem(
                index,
                "timestamp",
                f"timestamp is {told}; at most {settings.max_future_seconds:.0f} s ahead is accepted",
            )
        )
    properties = raw.get("properties")
    if "properties" not in bad and isinstance(properties, dict):
        size = len(orjson.dumps(properties))
        if size > settings.max_properties_bytes:
            problems.append(
                FieldProblem(
                    index,
                    "properties",
                    f"properties are {size} bytes of JSON; the limit is {settings.max_properties_bytes}",
                )
            )
    return ts


def _looks_like_milliseconds(raw: Any, latest: float) -> bool:
    """A number that, read as milliseconds, is a time we would accept since 2001 (a string date never is)."""
    return isinstance(raw, int | float) and not isinstance(raw, bool) and 1e9 <= raw / 1000 <= latest


def problems_from_validation(exc: ValidationError, single: bool) -> list[FieldProblem]:
    """Turn pydantic's errors into ``{index, field, message}`` problems."""
    out: list[FieldProblem] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        index = 0
        if loc and isinstance(loc[0], int):
            first = loc.pop(0)
            index = 0 if single else int(first)
        field = ".".join(str(part) for part in loc) or "(event)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "field required"
        elif err["type"] == "value_error" and "error" in err.get("ctx", {}):
            message = str(err["ctx"]["error"])
        out.append(FieldProblem(index, field, message))
    return out
