"""Exposure records as workers read them from the events topic (distributed mode)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from freshrec.experiments.shared import take_exposure

GOOD: dict[str, Any] = {
    "op": "exposure",
    "request_id": "r1",
    "experiment_id": "exp",
    "variant": "fresh",
    "user_id": "u1",
    "items": ["a", "b"],
    "at": 10.0,
    "window": 60.0,
}


def test_events_are_left_to_the_event_path_and_exposures_taken_with_their_place() -> None:
    taken: list[tuple[int, Mapping[str, Any]]] = []
    assert take_exposure({"user_id": "u1", "item_id": "a", "type": "click"}, 1, taken) is None
    assert take_exposure([GOOD], 2, taken) is None
    assert take_exposure(GOOD, 3, taken) == ""
    assert taken == [(3, GOOD)]


def test_a_malformed_exposure_says_why_and_is_not_taken() -> None:
    taken: list[tuple[int, Mapping[str, Any]]] = []
    cases = {
        "user_id": ({**GOOD, "user_id": ""}, "user_id must be a non-empty string"),
        "items": ({**GOOD, "items": "a"}, "items must be a list"),
        "at": ({**GOOD, "at": "soon"}, "at must be a number"),
        "nan": ({**GOOD, "window": float("nan")}, "window must be a number"),
        "bool": ({**GOOD, "at": True}, "at must be a number"),
        "window": ({**GOOD, "window": 0}, "window must be positive"),
    }
    for name, (record, reason) in cases.items():
        problem = take_exposure(record, 1, taken)
        assert problem is not None and reason in problem, name
    assert taken == []
