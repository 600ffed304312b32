"""What a worker needs to apply a partition's records exactly once on top of
:meth:`freshrec.state.redis.RedisState.fenced`: which records are still to apply, and how to put this
process's catalog mirror back when a fenced transaction did not commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from freshrec.catalog import Catalog, Item

try:
    from confluent_kafka import Message
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("freshrec worker needs confluent-kafka: pip install 'freshrec[distributed]'") from exc


def partition_of(message: Message) -> str:
    """The name a partition's applied offset is stored under: ``topic:partition``."""
    return f"{message.topic()}:{message.partition()}"


def offset_of(message: Message) -> int:
    offset = message.offset()
    if offset is None:  # only produced messages lack one
        raise ValueError(f"a consumed record of {partition_of(message)} has no offset")
    return offset


@dataclass(slots=True)
class Unapplied:
    """The records of a run still to apply, in consumed order, and where each partition will stand."""

    todo: list[Message] = field(default_factory=list)
    advance: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    gaps: dict[str, tuple[Message, int]] = field(default_factory=dict)  # partition -> (first held, stored)


def unapplied(
    run: Sequence[Message], stored: dict[str, int | None], accepted_gaps: dict[str, int]
) -> Unapplied:
    """Split ``run`` by the stored offsets: records below them were applied already (skipped); a partition
    whose records start past its stored offset has a gap (records never applied) and is left out, to be
    read again from the stored offset, unless that gap was already re-read once (``accepted_gaps``)."""
    out = Unapplied()
    keep: set[int] = set()
    for name, start in stored.items():
        records = [m for m in run if partition_of(m) == name]
        if not records:
            continue
        first = offset_of(records[0])
        if start is not None and first > start and accepted_gaps.get(name) != start:
            out.gaps[name] = (records[0], start)
            continue
        fresh = [m for m in records if start is None or offset_of(m) >= start]
        out.skipped += len(records) - len(fresh)
        keep.update(id(m) for m in fresh)
        out.advance[name] = max(start or 0, offset_of(records[-1]) + 1)
    out.todo = [m for m in run if id(m) in keep]
    return out


def mirror_entries(catalog: Catalog, run: Sequence[Message], changes: bool) -> dict[str, Item | None]:
    """The entries of this process's catalog that applying ``run`` may change: every item a catalog change
    names (``changes``), or the items events name that the catalog lacks or knows only from events."""
    ids: set[str] = set()
    for message in run:
        try:
            record = orjson.loads(message.value() or b"")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        listed = record.get("items")
        for entry in listed if isinstance(listed, list) else [record]:
            if isinstance(entry, dict) and isinstance(entry.get("item_id"), str):
                ids.add(entry["item_id"])
    items = catalog.items
    return {i: items.get(i) for i in ids if changes or i not in items or items[i].observed}


def restore_mirror(catalog: Catalog, before: dict[str, Item | None]) -> None:
    """Put back the entries :func:`mirror_entries` saved (a transaction that did not commit changed them)."""
    for item_id, item in before.items():
        catalog.delete(item_id)
        if item is not None:
            catalog.replace(item)
