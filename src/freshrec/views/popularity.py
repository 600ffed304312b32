"""``item_popularity``: lifetime per-type counts and weighted total per item.

It also keeps the popularity rankings strategies walk for ties and fallbacks — every catalog item, in
``weighted_total desc, item_id asc`` order, overall, per category, per price tier and per catalog group
(category, brand, tier), all of catalog values. The group rankings let the grouped strategies read a group's
most popular items without sorting the whole group per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from freshrec.catalog import Item
from freshrec.config import Settings
from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import Resolved, Row, type_counts

RANKS = "popularity_rank"
ALL = ("all",)


def group_ranking(category: str | None, brand: str | None, tier: str | None) -> tuple[str | None, ...]:
    """The popularity ranking of one catalog group (see :meth:`freshrec.catalog.Catalog.group_of`)."""
    return ("group", category, brand, tier)


class ItemPopularity:
    name = "item_popularity"
    keyed_by = "item_id"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        weight = attrs.weight
        store.add(self.name, event.item_id, "", {f"{event.type}_count": 1.0, "weighted_total": weight})
        store.rank_add(RANKS, ALL, event.item_id, weight)
        store.rank_add(RANKS, ("category", attrs.item_category), event.item_id, weight)
        store.rank_add(RANKS, ("tier", attrs.item_tier), event.item_id, weight)
        store.rank_add(
            RANKS,
            group_ranking(attrs.item_category, attrs.item_brand, attrs.item_tier),
            event.item_id,
            weight,
        )

    def on_item_change(self, old: Item | None, new: Item | None, store: StateStore, tiers: Any) -> None:
        if old is not None:
            store.rank_remove(RANKS, ("category", old.category), old.item_id)
            store.rank_remove(RANKS, ("tier", tiers.of(old.price)), old.item_id)
            store.rank_remove(RANKS, group_ranking(old.category, old.brand, tiers.of(old.price)), old.item_id)
            if new is None:
                store.rank_remove(RANKS, ALL, old.item_id)
        if new is not None:
            total = self.popularity(store, new.item_id)
            store.rank_remove(RANKS, ALL, new.item_id)
            store.rank_add(RANKS, ALL, new.item_id, total)
            store.rank_add(RANKS, ("category", new.category), new.item_id, total)
            store.rank_add(RANKS, ("tier", tiers.of(new.price)), new.item_id, total)
            store.rank_add(
                RANKS, group_ranking(new.category, new.brand, tiers.of(new.price)), new.item_id, total
            )

    def rebuild_groups(self, store: StateStore, items: Iterable[Item], tiers: Any) -> None:
        """Fill the group rankings from the counters (state written before they existed)."""
        for item in items:
            total = self.popularity(store, item.item_id)
            ranking = group_ranking(item.category, item.brand, tiers.of(item.price))
            store.rank_remove(RANKS, ranking, item.item_id)
            store.rank_add(RANKS, ranking, item.item_id, total)

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def popularity(self, store: StateStore, item_id: str) -> float:
        fields = store.fields(self.name, item_id, "")
        return 0.0 if fields is None else fields.get("weighted_total", 0.0)

    def popularities(self, store: StateStore, item_ids: Sequence[str]) -> list[float]:
        """:meth:`popularity` of many items (one round trip on a networked store)."""
        found = store.fields_of_keys(self.name, item_ids, "")
        return [0.0 if f is None else f.get("weighted_total", 0.0) for f in found]

    def ranked(self, store: StateStore, ranking: tuple[Any, ...]) -> Iterator[tuple[str, float]]:
        """Items of a popularity ranking: weighted total desc, item_id asc."""
        return store.rank_iter(RANKS, ranking)

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        items = [key] if key is not None else store.keys(self.name)
        out: list[Row] = []
        for item in items:
            fields = store.fields(self.name, item, "")
            if fields is None:
                continue
            out.append(
                {
                    "item_id": item,
                    **type_counts(self.settings, fields),
                    "weighted_total": fields.get("weighted_total", 0.0),
                }
            )
        return out
