"""Data sets for evaluation: items, time-ordered validated events, and which events are targets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freshrec.config import Settings
from freshrec.datasets.files import BadFile, read_records
from freshrec.datasets.movielens import RatingMapping, load_movielens
from freshrec.errors import InvalidInput
from freshrec.events import Event, validate_events

DATASETS = ("movielens", "datasqrl", "events", "shop")
SHOP_START = 1_700_000_000.0  # the generated shop's clickstream starts here (reproducible runs)


@dataclass(slots=True)
class EvalData:
    name: str
    items: list[dict[str, Any]]
    events: list[Event]  # time-ordered
    target_types: frozenset[str]

    def is_target(self, event: Event) -> bool:
        return event.type in self.target_types

    @property
    def catalog_size(self) -> int:
        return len({i["item_id"] for i in self.items} | {e.item_id for e in self.events})

    def rating(self, event: Event) -> float | None:
        props = event.properties or {}
        value = props.get("rating")
        return float(value) if isinstance(value, int | float) else None


def load(dataset: str, path: Path, settings: Settings, mapping: RatingMapping | None = None) -> EvalData:
    """Read a data set: ``movielens`` (any GroupLens layout or RecBole atomic files), ``datasqrl`` (a
    directory or files of the clickstream example), ``events`` (freshrec JSON lines / CSV files) or
    ``shop`` (the demo's generated shop: 2,000 products, 200 users over 6 hours; ``path`` is not read;
    targets are the first interaction of a user with an item).

    Targets (SPEC §8): purchases and clicks; for MovieLens, ratings >= ``mapping.strong_min`` (they become
    ``mapping.strong_type`` events).
    """
    if dataset == "movielens":
        chosen = mapping or RatingMapping()
        items, records = load_movielens(path, chosen)
        return EvalData(
            f"movielens:{path.name}", items, _validated(records, settings), frozenset({chosen.strong_type})
        )
    if dataset == "shop":
        from freshrec.demo.scenario import generate_scenario

        scenario = generate_scenario(start=SHOP_START)
        records = [dict(e) for e in scenario.events]
        # every click or purchase follows a view of the same item, so the discoveries are first views
        targets = frozenset({"view", "click", "purchase"})
        return EvalData("shop:generated", scenario.items, _validated(records, settings), targets)
    if dataset in ("datasqrl", "events"):
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        fmt = "datasqrl" if dataset == "datasqrl" else "auto"
        items = []
        records = []
        for file in files:
            for kind, record in read_records(file, fmt):
                (items if kind == "item" else records).append(record)
        return EvalData(
            f"{dataset}:{path.name}", items, _validated(records, settings), frozenset({"purchase", "click"})
        )
    raise BadFile(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def _validated(records: Iterable[dict[str, Any]], settings: Settings) -> list[Event]:
    rows = list(records)
    size = settings.events.max_batch
    events: list[Event] = []
    for start in range(0, len(rows), size):
        try:
            events.extend(validate_events(rows[start : start + size], settings.events))
        except InvalidInput as exc:
            first = exc.details[0] if exc.details else None
            where = f" (event #{start + first.index}, {first.field}: {first.message})" if first else ""
            raise BadFile(f"the data set has invalid events: {exc}{where}") from None
    if not events:
        raise BadFile("the data set has no events")
    order = sorted(range(len(events)), key=lambda i: events[i].ts)
    return [events[i] for i in order]
