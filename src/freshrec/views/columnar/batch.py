"""A batch of events as id columns: what a columnar view's ``apply_batch`` reads.

Strings are interned once per batch (:class:`Vocabulary`); every other column is a numpy array, so a view
applies the whole batch in one compiled loop. ``now`` is the engine clock as each event was applied: in
event-clock mode it moves forward inside the batch exactly as it would event by event.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from freshrec.events import Event
from freshrec.state.ids import Interner
from freshrec.state.keytable import KeyTable
from freshrec.views.base import Resolved, Row

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
NONE = -1  # the id of a missing category, brand or tier


class Vocabulary:
    """The interned names every columnar view shares."""

    def __init__(self, types: Sequence[str], tiers: Sequence[str]) -> None:
        self.users = Interner()
        self.items = Interner()
        self.categories = Interner()
        self.brands = Interner()
        self.types = Interner(types)
        self.tiers = Interner(tiers)

    def optional(self, interner: Interner, names: Sequence[str | None]) -> I64:
        """Ids of ``names``, :data:`NONE` where a name is missing."""
        return np.asarray([NONE if n is None else interner.id(n) for n in names], dtype=np.int64)

    def arrays(self) -> dict[str, Any]:
        return {
            "users": self.users.names(),
            "items": self.items.names(),
            "categories": self.categories.names(),
            "brands": self.brands.names(),
            "free_users": self.users.free_ids(),  # forgotten users' ids (retention)
        }

    def load(self, names: dict[str, Any]) -> None:
        self.users.load(names.get("users", []), names.get("free_users", []))
        for kind, interner in (
            ("items", self.items),
            ("categories", self.categories),
            ("brands", self.brands),
        ):
            interner.load(names.get(kind, []))


@dataclass(slots=True)
class Batch:
    """Columns of ``n`` resolved events (SPEC §1: an event's own attributes, else the catalog's)."""

    n: int
    user: I64
    item: I64
    kind: I64  # index of the event type in the configured types
    ts: F64
    now: F64
    weight: F64
    dwell: F64  # NaN where absent
    category: I64
    brand: I64
    tier: I64
    event_ids: list[str]


class BatchBuilder:
    """Collects the resolved attributes of events one by one, then interns them as a :class:`Batch`."""

    __slots__ = (
        "brands",
        "categories",
        "dwell",
        "event_ids",
        "items",
        "kinds",
        "nows",
        "tiers",
        "ts",
        "users",
        "weights",
    )

    def __init__(self) -> None:
        self.users: list[str] = []
        self.items: list[str] = []
        self.kinds: list[str] = []
        self.ts: list[float] = []
        self.nows: list[float] = []
        self.weights: list[float] = []
        self.dwell: list[float] = []
        self.categories: list[str | None] = []
        self.brands: list[str | None] = []
        self.tiers: list[str | None] = []
        self.event_ids: list[str] = []

    def add(self, event: Event, attrs: Resolved, now: float) -> None:
        self.users.append(event.user_id)
        self.items.append(event.item_id)
        self.kinds.append(event.type)
        self.ts.append(event.ts)
        self.nows.append(now)
        self.weights.append(attrs.weight)
        self.dwell.append(math.nan if event.dwell_seconds is None else event.dwell_seconds)
        self.categories.append(attrs.category)
        self.brands.append(attrs.brand)
        self.tiers.append(attrs.tier)
        self.event_ids.append(event.event_id)

    def add_event(self, event: Event, item: Any, weight: float, tier_of: Any) -> None:
        """An event resolved against its catalog ``item``: the event's own attributes win (SPEC §1)."""
        self.users.append(event.user_id)
        self.items.append(event.item_id)
        self.kinds.append(event.type)
        self.ts.append(event.ts)
        self.weights.append(weight)
        dwell = event.dwell_seconds
        self.dwell.append(math.nan if dwell is None else dwell)
        category, brand, price = event.category, event.brand, event.price
        self.categories.append(item.category if category is None else category)
        self.brands.append(item.brand if brand is None else brand)
        self.tiers.append(tier_of(item.price if price is None else price))
        self.event_ids.append(event.event_id)

    def build(self, vocabulary: Vocabulary, now: float | None = None, event_clock: bool = False) -> Batch:
        """The batch; with ``now``, the clock of each event is derived (not collected by :meth:`add`):
        ``now`` in wall-clock mode, the running largest timestamp in event-clock mode."""
        v = vocabulary
        ts = np.asarray(self.ts, dtype=np.float64)
        if now is None:
            nows = np.asarray(self.nows, dtype=np.float64)
        elif event_clock:
            nows = np.maximum.accumulate(np.maximum(ts, now)) if len(ts) else ts
        else:
            nows = np.full(len(ts), now)
        return Batch(
            n=len(self.users),
            user=v.users.ids(self.users),
            item=v.items.ids(self.items),
            kind=v.types.ids(self.kinds),
            ts=ts,
            now=nows,
            weight=np.asarray(self.weights, dtype=np.float64),
            dwell=np.asarray(self.dwell, dtype=np.float64),
            category=v.optional(v.categories, self.categories),
            brand=v.optional(v.brands, self.brands),
            tier=v.optional(v.tiers, self.tiers),
            event_ids=self.event_ids,
        )


class ColumnarView(Protocol):
    """A feature view whose state is numpy columns, applied a batch at a time."""

    name: str
    keyed_by: str

    def apply_batch(self, batch: Batch) -> None:
        """Fold every event of ``batch`` into the view, in order."""

    def expire(self, store: Any, now: float) -> None:
        """Drop state out of retention at ``now``."""

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        """Rows of the view (of one key when given), as of ``now``."""
        ...

    def arrays(self) -> dict[str, Any]:
        """The view's state as arrays (a snapshot)."""
        ...

    def load(self, arrays: dict[str, Any]) -> None:
        """Replace the view's state by :meth:`arrays` output."""

    def nbytes(self) -> int:
        """Bytes held by the view's arrays."""
        ...

    def used_bytes(self) -> int:
        """Bytes of the entries held (what retention's memory budget counts), not of the capacity."""
        ...

    def forget_users(self, dead: Bools) -> None:
        """Drop every entry of the users whose id is True in ``dead`` (their ids are reused next)."""

    def forget_items(self, dead: Bools) -> None:
        """Drop the item-keyed entries of the (deleted) items whose id is True in ``dead``."""


class OneTable:
    """Snapshot methods of a view whose whole state is one :class:`KeyTable` named ``table``."""

    table: KeyTable

    def arrays(self) -> dict[str, Any]:
        return {"table": self.table.arrays()}

    def load(self, arrays: dict[str, Any]) -> None:
        self.table.load(arrays["table"])

    def nbytes(self) -> int:
        return self.table.nbytes()

    def used_bytes(self) -> int:
        return self.table.used_bytes()

    def forget_users(self, dead: Bools) -> None:
        """The table is keyed by ``(user, ...)``: the users' rows go."""
        self.table.drop(first=dead)

    def forget_items(self, dead: Bools) -> None:
        """Keyed by user: a user's entries about a deleted item are the user's history and stay."""


def marked(flags: Bools, ids: Any) -> Bools:
    """``flags[ids]``, False for ids past the end of ``flags``."""
    out = np.zeros(len(ids), dtype=np.bool_)
    inside = ids < len(flags)
    out[inside] = flags[ids[inside]]
    return out


def rows_of_user(table: KeyTable, vocabulary: Vocabulary, user_id: str | None) -> Any:
    """Rows of one user (by name), oldest first, or every row."""
    if user_id is None:
        return np.arange(table.n, dtype=np.int32)
    user = vocabulary.users.get(user_id)
    return table.group(user)[::-1] if user >= 0 else np.empty(0, dtype=np.int32)


def type_index(types: Interner, name: str) -> int:
    """Index of event type ``name``, -1 when it is not configured."""
    return types.get(name)
