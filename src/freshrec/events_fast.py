"""The fast path of event validation: plain checks over a batch that is (almost always) valid.

:func:`fast_events` accepts a batch only when every event passes checks at least as strict as
:class:`freshrec.events.EventIn` and the semantic checks of :func:`freshrec.events.validate_events`, and then
returns exactly the events that path would build. At the first thing it is not sure of (a wrong type, a
value out of range, an unknown field, a future timestamp...) it gives up and returns None: the caller
validates the batch the full way, which writes the error report. So the accepted events and the errors of
a batch are the same with or without it; it only skips pydantic's model instances and the per-field
Python validators for batches without a problem.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson

from freshrec.config import EventSettings
from freshrec.events import _CONTROL, _OPTIONAL_FIELDS, ITEM_ID_MAX, USER_ID_MAX, Event, parse_rfc3339

_FIELDS = frozenset({"event_id", "user_id", "item_id", "type", "timestamp", *_OPTIONAL_FIELDS})
#: optional string fields without a control-character check, and their longest accepted length
_PLAIN = (("category", 256), ("subcategory", 256), ("brand", 256), ("content_type", 256))


def fast_events(items: list[Any], settings: EventSettings, now: float) -> list[Event] | None:
    """The events of ``items`` (a non-empty list within the batch limit), or None when any may be invalid."""
    weights = settings.weights
    latest = now + settings.max_future_seconds
    max_properties = settings.max_properties_bytes
    search = _CONTROL.search
    out: list[Event] = []
    append = out.append
    for raw in items:
        if type(raw) is not dict or not raw.keys() <= _FIELDS:
            return None
        get = raw.get
        user_id, item_id, kind = get("user_id"), get("item_id"), get("type")
        if (
            type(user_id) is not str
            or type(item_id) is not str
            or type(kind) is not str
            or not 0 < len(user_id) <= USER_ID_MAX
            or not 0 < len(item_id) <= ITEM_ID_MAX
            or kind not in weights
            or len(kind) > 64
            or search(user_id)
            or search(item_id)
            or not (user_id.isascii() or _encodes(user_id))
            or not (item_id.isascii() or _encodes(item_id))
        ):
            return None
        event_id = get("event_id")
        if event_id is None:
            event_id = uuid.uuid4().hex
        elif type(event_id) is not str or not 0 < len(event_id) <= 128 or not _text(event_id):
            return None
        ts = _timestamp(get("timestamp"), now)
        if ts is None or ts > latest:
            return None
        session_id = get("session_id")
        if session_id is not None and (
            type(session_id) is not str
            or len(session_id) > 256
            or search(session_id)
            or not _text(session_id)
        ):
            return None
        request_id = get("request_id")
        if request_id is not None and (
            type(request_id) is not str
            or not 0 < len(request_id) <= 128
            or search(request_id)
            or not _text(request_id)
        ):
            return None
        for name, longest in _PLAIN:
            value = get(name)
            if value is not None and (type(value) is not str or len(value) > longest or not _text(value)):
                return None
        dwell = get("dwell_seconds")
        if dwell is not None:
            dwell = _non_negative(dwell)
            if dwell is None:
                return None
        price = get("price")
        if price is not None:
            price = _non_negative(price)
            if price is None:
                return None
        properties = get("properties")
        if properties is not None:
            if type(properties) is not dict or not all(type(k) is str for k in properties):
                return None
            try:
                if len(orjson.dumps(properties)) > max_properties:
                    return None
            except (TypeError, orjson.JSONEncodeError):
                return None
            properties = dict(properties)
        append(
            Event(
                event_id,
                user_id,
                item_id,
                kind,
                ts,
                session_id,
                dwell,
                get("category"),
                get("subcategory"),
                get("brand"),
                get("content_type"),
                price,
                properties,
                request_id,
            )
        )
    return out


def _text(value: str) -> bool:
    """A string the full path takes as it is (no lone surrogates: they are not Unicode text)."""
    return value.isascii() or _encodes(value)


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _timestamp(value: Any, now: float) -> float | None:
    """The event time as :class:`freshrec.events.EventIn` reads it, or None when it may be invalid."""
    if value is None:
        return now
    kind = type(value)
    if kind is float or kind is int:
        try:
            ts = float(value)
        except OverflowError:
            return None
        return ts if math.isfinite(ts) and ts >= 0 else None
    if kind is str:
        try:
            return parse_rfc3339(value)
        except (ValueError, OverflowError, OSError):
            return None
    return None


def _non_negative(value: Any) -> float | None:
    """A finite number ≥ 0 as a float (``dwell_seconds``, ``price``), or None when it may be invalid."""
    kind = type(value)
    if kind is not float and kind is not int:
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
