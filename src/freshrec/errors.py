"""Errors the caller can act on; the API turns them into 4xx JSON bodies ``{"error", "details"}``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem in one input: which element (``index``), which ``field``, and what is wrong."""

    index: int
    field: str
    message: str


@dataclass
class InvalidInput(Exception):
    """The caller sent something freshrec cannot accept; nothing of it was stored."""

    error: str
    details: list[FieldProblem] = field(default_factory=list)
    status: int = 422
    #: extra response headers (``Retry-After`` of a 429)
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.error)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "details": [asdict(p) for p in self.details]}


class Stopped(Exception):
    """A long job (a training) gave up because the server is stopping; nothing was swapped in."""


class NotFound(Exception):
    """A named thing (item, view, strategy) does not exist."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
