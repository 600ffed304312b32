"""Error bodies of bounded size: a 10,000-event batch with a problem in each lists the first ones only."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from freshrec.errors import FieldProblem, InvalidInput

#: problems listed in one error answer; the message says how many more there were
MAX_DETAILS = 100


def listed(exc: InvalidInput) -> tuple[list[FieldProblem], str]:
    """The problems to show and the error message, which counts the ones left out."""
    shown = exc.details[:MAX_DETAILS]
    error = exc.error
    if len(exc.details) > MAX_DETAILS:
        error += f" (the first {MAX_DETAILS} are listed, {len(exc.details) - MAX_DETAILS} more are not)"
    return shown, error


def capped_body(exc: InvalidInput) -> dict[str, Any]:
    """``{"error", "details"}`` with at most :data:`MAX_DETAILS` details."""
    shown, error = listed(exc)
    return {"error": error, "details": [asdict(p) for p in shown]}
