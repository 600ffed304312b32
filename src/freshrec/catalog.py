"""The catalog (SPEC §2): items, their validation, and the indexes strategies read candidates from.

Items are grouped by ``(category, brand, price tier)``: every user-side score of the profile strategies
depends on an item only through that triple, so ranking works on groups instead of scanning items.
Items referenced by events but absent from the catalog are *observed*: they take the attributes the
events carry, and an explicit upsert replaces them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from freshrec.errors import FieldProblem, InvalidInput
from freshrec.tiers import PriceTiers

GroupKey = tuple[str | None, str | None, str | None]


class ItemIn(BaseModel):
    """An item as sent to ``PUT /v1/items/{item_id}`` or ``POST /v1/items``."""

    # strict: a JSON string is not a number and 0 is not false
    model_config = ConfigDict(extra="forbid", strict=True)

    item_id: str = Field(min_length=1, max_length=1024)
    title: str | None = Field(None, max_length=4096)
    text: str | None = Field(None, max_length=65_536)
    url: str | None = Field(None, max_length=4096)
    category: str | None = Field(None, max_length=256)
    subcategory: str | None = Field(None, max_length=256)
    brand: str | None = Field(None, max_length=256)
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    in_stock: bool = True
    content_type: str | None = Field(None, max_length=256)
    tags: list[str] = Field(default_factory=list, max_length=256)
    properties: dict[str, Any] | None = None
    embedding: list[float] | None = Field(
        None, max_length=8192, description="The item's own vector (else it is computed from its text)."
    )


@dataclass(slots=True)
class Item:
    item_id: str
    title: str | None = None
    text: str | None = None
    url: str | None = None
    category: str | None = None
    subcategory: str | None = None
    brand: str | None = None
    price: float | None = None
    in_stock: bool = True
    content_type: str | None = None
    tags: list[str] = field(default_factory=list)
    properties: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    observed: bool = False
    observed_at: dict[str, tuple[float, str]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in Item.__dataclass_fields__
            if name not in ("observed", "observed_at")
        }
        out["source"] = "events" if self.observed else "catalog"
        return out


_ITEMS = TypeAdapter(list[ItemIn])
_ITEM = TypeAdapter(ItemIn)
MAX_PROPERTIES_BYTES = 16 * 1024


def validate_items(payload: Any, max_items: int = 10_000) -> list[ItemIn]:
    """Validate a decoded array of items (all-or-nothing) or raise :class:`InvalidInput`."""
    if not isinstance(payload, list):
        raise InvalidInput("expected an array of item objects")
    if not payload:
        raise InvalidInput("the array of items is empty")
    if len(payload) > max_items:
        raise InvalidInput(f"{len(payload)} items in one request; the limit is {max_items}", status=413)
    problems: list[FieldProblem] = []
    try:
        items = _ITEMS.validate_python(payload)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = list(err["loc"])
            index = loc.pop(0) if loc and isinstance(loc[0], int) else 0
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(FieldProblem(int(index), ".".join(map(str, loc)) or "(item)", message))
        items = []
    for index, item in enumerate(items):
        if item.properties is not None and len(orjson.dumps(item.properties)) > MAX_PROPERTIES_BYTES:
            problems.append(
                FieldProblem(index, "properties", f"larger than {MAX_PROPERTIES_BYTES} bytes of JSON")
            )
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the request; nothing was stored", problems)
    return items


def validate_item(payload: Any) -> ItemIn:
    try:
        return _ITEM.validate_python(payload)
    except ValidationError as exc:
        details = [
            FieldProblem(
                0,
                ".".join(map(str, err["loc"])) or "(item)",
                "unknown field" if err["type"] == "extra_forbidden" else err["msg"],
            )
            for err in exc.errors(include_url=False)
        ]
        raise InvalidInput(f"{len(details)} problem(s) in the item; nothing was stored", details) from None


class Catalog:
    """Items by id, with group indexes by category, brand and price tier."""

    def __init__(self, tiers: PriceTiers) -> None:
        self.tiers = tiers
        self.items: dict[str, Item] = {}
        self.groups: dict[GroupKey, set[str]] = {}
        self.groups_by_category: dict[str | None, set[GroupKey]] = {}
        self.groups_by_brand: dict[str | None, set[GroupKey]] = {}
        self.groups_by_tier: dict[str | None, set[GroupKey]] = {}
        self._group_table: GroupTable | None = None  # built on first read after a group came or went

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def group_of(self, item: Item) -> GroupKey:
        return (item.category, item.brand, self.tiers.of(item.price))

    def upsert(self, incoming: ItemIn, now: float | None = None) -> tuple[Item | None, Item]:
        """Insert or replace an item; returns ``(old, new)``."""
        stamp = time.time() if now is None else now
        old = self.items.get(incoming.item_id)
        item = Item(**incoming.model_dump(exclude={"embedding"}))
        item.created_at = old.created_at if old is not None and not old.observed else stamp
        item.updated_at = stamp
        self._put(item, old)
        return old, item

    def delete(self, item_id: str) -> Item | None:
        """Remove an item; returns it, or None when it was not there."""
        old = self.items.pop(item_id, None)
        if old is not None:
            self._unindex(old)
        return old

    def observe(
        self,
        item_id: str,
        category: str | None,
        brand: str | None,
        price: float | None,
        stamp: tuple[float, str],
    ) -> tuple[Item | None, Item] | None:
        """Record an item seen only in events.

        Each attribute is taken from the latest event (by ``(timestamp, event_id)``) that carries it, so
        the result does not depend on arrival order. Observed items count as in stock. Returns
        ``(old, new)`` when the catalog changed, None otherwise.
        """
        old = self.items.get(item_id)
        if old is not None and not old.observed:
            return None
        given = {"category": category, "brand": brand, "price": price}
        seen_at = dict(old.observed_at) if old is not None and old.observed_at else {}
        values: dict[str, Any] = {}
        for name, value in given.items():
            current = None if old is None else getattr(old, name)
            if value is not None and (name not in seen_at or stamp > seen_at[name]):
                seen_at[name] = stamp
                values[name] = value
            else:
                values[name] = current
        if (
            old is not None
            and all(values[n] == getattr(old, n) for n in given)
            and seen_at == old.observed_at
        ):
            return None
        item = Item(
            item_id,
            created_at=stamp[0] if old is None else min(old.created_at, stamp[0]),
            updated_at=stamp[0] if old is None else max(old.updated_at, stamp[0]),
            observed=True,
            observed_at=seen_at,
            **values,
        )
        if old is not None and all(values[n] == getattr(old, n) for n in given):
            self.items[item_id] = item  # only the provenance moved: indexes stay as they are
            return None
        self._put(item, old)
        return old, item

    def replace(self, item: Item) -> None:
        """Put ``item`` (mirroring a change another process made).

        Two items known only from events are merged attribute by attribute, the latest observation of
        each winning, so mirrors that receive concurrent observations in different orders agree.
        """
        old = self.items.get(item.item_id)
        if old is not None and old.observed and item.observed and old.observed_at and item.observed_at:
            seen_at = dict(old.observed_at)
            values = {n: getattr(old, n) for n in ("category", "brand", "price")}
            for name, stamp in item.observed_at.items():
                if name not in seen_at or stamp > seen_at[name]:
                    seen_at[name] = stamp
                    values[name] = getattr(item, name)
            item = Item(
                item.item_id,
                created_at=min(old.created_at, item.created_at),
                updated_at=max(old.updated_at, item.updated_at),
                observed=True,
                observed_at=seen_at,
                **values,
            )
        self._put(item, old)

    def load(self, items: Iterable[Item]) -> None:
        """Replace the whole catalog (restoring a snapshot)."""
        self.items.clear()
        self.groups.clear()
        self.groups_by_category.clear()
        self.groups_by_brand.clear()
        self.groups_by_tier.clear()
        self._group_table = None
        for item in items:
            self._put(item, None)

    def _put(self, item: Item, old: Item | None) -> None:
        if old is not None:
            self._unindex(old)
        self.items[item.item_id] = item
        key = self.group_of(item)
        members = self.groups.get(key)
        if members is None:
            self._group_table = None
            self.groups[key] = {item.item_id}
            self.groups_by_category.setdefault(key[0], set()).add(key)
            self.groups_by_brand.setdefault(key[1], set()).add(key)
            self.groups_by_tier.setdefault(key[2], set()).add(key)
        else:
            members.add(item.item_id)

    def _unindex(self, item: Item) -> None:
        key = self.group_of(item)
        members = self.groups.get(key)
        if members is None:
            return
        members.discard(item.item_id)
        if not members:
            self._group_table = None
            del self.groups[key]
            for index, part in (
                (self.groups_by_category, key[0]),
                (self.groups_by_brand, key[1]),
                (self.groups_by_tier, key[2]),
            ):
                keys = index.get(part)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[part]

    def group_table(self) -> GroupTable:
        """Every group with its category, brand and tier as codes, for scoring all groups in one go."""
        if self._group_table is None:
            self._group_table = GroupTable(list(self.groups))
        return self._group_table

    def groups_in_category(self, category: str) -> Iterable[GroupKey]:
        return self.groups_by_category.get(category, ())

    def iter_items(self) -> Iterator[Item]:
        return iter(self.items.values())


class GroupTable:
    """The catalog's groups as three code columns: ``codes[part][g]`` indexes ``names[part]``."""

    __slots__ = ("codes", "keys", "names")

    def __init__(self, keys: list[GroupKey]) -> None:
        self.keys = keys
        self.names: tuple[list[str | None], ...] = ([], [], [])
        columns = []
        for part in range(3):
            index: dict[str | None, int] = {}
            values = [index.setdefault(key[part], len(index)) for key in keys]
            self.names[part].extend(index)
            columns.append(np.asarray(values, dtype=np.int32))
        self.codes = tuple(columns)

    def lookup(self, part: int, values: Mapping[Any, float]) -> npt.NDArray[np.float64]:
        """``values`` of each group's ``part`` (0 category, 1 brand, 2 tier), 0 where it has none."""
        table = np.asarray([values.get(name, 0.0) for name in self.names[part]], dtype=np.float64)
        return table[self.codes[part]] if len(table) else np.zeros(len(self.keys))
