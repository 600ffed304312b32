"""The fast validation path accepts only what the full (pydantic) path accepts, with the same events.

Each case is validated both ways on its own: when the fast path returns events, the full path must return
equal ones; when the full path finds problems, the fast path must have given up (so ``validate_events``
reports the full path's problems). Typical valid batches must be taken by the fast path.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freshrec.config import load_settings
from freshrec.errors import InvalidInput
from freshrec.events import Event, _validate_fully, validate_events
from freshrec.events_fast import fast_events

EVENTS = load_settings().events
NOW = 1_700_000_000.0

ODD_STRINGS = ["", "a", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 256, "x" * 257, "x" * 1025]
ODD_STRINGS += ["u\x00", "u\x1f", "\x7f", "\x9f", "\u202e", "\ud800", "é" * 200, " ", "view", "purchase"]
ODD_NUMBERS: list[Any] = [0, 1, -1, 0.5, -0.0, 1e300, -1e300, 10**400, float("nan"), float("inf")]
ODD_NUMBERS += [float("-inf"), True, False, NOW, NOW + 10, NOW + 1e6, NOW * 1000, 2**63]
ODD_TIMES = ["2023-11-14T22:13:20Z", "2023-11-14T22:13:20+02:00", "2023-11-14T22:13:20", "yesterday"]
ODD_TIMES += ["1960-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "2030-01-01T00:00:00Z", ""]
ODD_VALUES: list[Any] = [None, [], {}, ["a"], {"a": 1}, {1: "a"}, {"k": "v" * 5000}, b"a", object()]
ANY = st.sampled_from(ODD_STRINGS + ODD_NUMBERS + ODD_TIMES + ODD_VALUES)
GOOD = {"user_id": "u1", "item_id": "i1", "type": "view"}
FIELDS = [
    "event_id",
    "user_id",
    "item_id",
    "type",
    "timestamp",
    "session_id",
    "dwell_seconds",
    "category",
    "subcategory",
    "brand",
    "content_type",
    "price",
    "properties",
    "request_id",
    "unknown_field",
]


def same(fast: list[Event], full: list[Event], ids_given: bool) -> None:
    assert len(fast) == len(full)
    for a, b in zip(fast, full, strict=True):
        if not ids_given:
            assert len(a.event_id) == 32 and len(b.event_id) == 32
            a.event_id = b.event_id = "generated"
        assert a == b
        for name in ("ts", "dwell_seconds", "price"):
            assert type(getattr(a, name)) is type(getattr(b, name))


def check(raw: Any) -> bool:
    """Both paths on one event; True when the fast path took it."""
    fast = fast_events([raw], EVENTS, NOW)
    try:
        full = _validate_fully([raw], False, EVENTS, NOW)
    except (InvalidInput, OverflowError, TypeError):  # the last two: Python input JSON cannot hold
        assert fast is None, raw
        return False
    if fast is not None:
        ids_given = isinstance(raw, dict) and raw.get("event_id") is not None
        same(fast, full, ids_given)
    return fast is not None


@settings(max_examples=3000, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), ANY, max_size=6), st.booleans())
def test_fast_path_never_accepts_more_or_differently(changes: dict[str, Any], drop: bool) -> None:
    raw: dict[str, Any] = {**GOOD, **changes}
    if drop:
        raw.pop(next(iter(changes), "user_id"), None)
    check(raw)


@pytest.mark.parametrize("value", ODD_STRINGS + ODD_NUMBERS + ODD_TIMES + ODD_VALUES)
@pytest.mark.parametrize("field", FIELDS)
def test_each_field_with_each_odd_value(field: str, value: Any) -> None:
    check({**GOOD, field: value})


@pytest.mark.parametrize("raw", [None, 5, "event", [GOOD], ("a",)])
def test_not_an_object(raw: Any) -> None:
    assert not check(raw)


VALID: list[dict[str, Any]] = [
    GOOD,
    {**GOOD, "event_id": "e1", "timestamp": 1_699_999_000},
    {**GOOD, "timestamp": 1_699_999_000.25, "session_id": "s", "dwell_seconds": 3},
    {**GOOD, "type": "purchase", "price": 12, "category": "books", "brand": "b", "timestamp": None},
    {**GOOD, "timestamp": "2023-11-14T22:13:20Z", "subcategory": "x", "content_type": "article"},
    {**GOOD, "properties": {"a": [1, 2], "b": {"c": None}}, "request_id": "r1", "price": 0.0},
    {**GOOD, "user_id": "é" * 256, "item_id": "x" * 1024, "event_id": "x" * 128},
]


@pytest.mark.parametrize("raw", VALID)
def test_valid_events_take_the_fast_path(raw: dict[str, Any]) -> None:
    assert check(raw)


def test_a_batch_with_one_problem_reports_what_the_full_path_reports() -> None:
    batch: list[dict[str, Any]] = [dict(v) for v in VALID] + [
        {**GOOD, "user_id": "u\x00", "price": -1, "extra": 1}
    ]
    with pytest.raises(InvalidInput) as fast_first:
        validate_events(batch, EVENTS, received_at=NOW)
    with pytest.raises(InvalidInput) as full:
        _validate_fully(batch, False, EVENTS, NOW)
    assert fast_first.value.details == full.value.details
    assert [(p.index, p.field) for p in full.value.details] == [
        (7, "extra"),
        (7, "price"),
        (7, "user_id"),
    ]


def test_properties_over_the_limit_fall_back() -> None:
    big = {"k": "v" * EVENTS.max_properties_bytes}
    assert fast_events([{**GOOD, "properties": big}], EVENTS, NOW) is None
