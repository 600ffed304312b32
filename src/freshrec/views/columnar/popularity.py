"""``item_popularity`` in columns: lifetime per-type counts and weighted total, one array row per item.

The popularity rankings strategies walk (overall, per category, per price tier, per catalog group, all of
catalog values) get each batch's summed weight of every item the batch touched, once per item, and are
sorted lazily when read (:class:`freshrec.state.ranking.Ranking`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from freshrec.catalog import Item
from freshrec.config import Settings
from freshrec.state.ranking import Ranking
from freshrec.views.base import Row
from freshrec.views.columnar.batch import Batch, Vocabulary
from freshrec.views.popularity import ALL, group_ranking


class ItemPopularity:
    name = "item_popularity"
    keyed_by = "item_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.types = list(settings.events.weights)
        self.counts = np.zeros((1024, len(self.types)), dtype=np.int32)
        self.total = np.zeros(1024, dtype=np.float64)
        self.rankings: dict[tuple[Any, ...], Ranking] = {}
        self.catalog: Mapping[str, Item] = {}  # the engine's catalog
        self.tier_of: Any = lambda price: None

    def _ranking(self, key: tuple[Any, ...]) -> Ranking:
        found = self.rankings.get(key)
        if found is None:
            found = self.rankings[key] = Ranking()
        return found

    def _keys(self, item: Item) -> tuple[tuple[Any, ...], ...]:
        tier = self.tier_of(item.price)
        return (
            ALL,
            ("category", item.category),
            ("tier", tier),
            group_ranking(item.category, item.brand, tier),
        )

    def apply_batch(self, batch: Batch) -> None:
        n_items = len(self.vocabulary.items)
        if n_items > len(self.total):
            size = max(n_items, 2 * len(self.total))
            counts = np.zeros((size, len(self.types)), dtype=np.int32)
            counts[: len(self.counts)] = self.counts
            total = np.zeros(size, dtype=np.float64)
            total[: len(self.total)] = self.total
            self.counts, self.total = counts, total
        np.add.at(self.counts, (batch.item, batch.kind), 1)
        np.add.at(self.total, batch.item, batch.weight)
        touched, where = np.unique(batch.item, return_inverse=True)
        deltas = np.bincount(where, weights=batch.weight, minlength=len(touched))
        name, catalog = self.vocabulary.items.name, self.catalog
        for item_id, delta in zip(touched.tolist(), deltas.tolist(), strict=True):
            member = name(item_id)
            item = catalog.get(member)
            if item is None:
                continue
            for key in self._keys(item):
                self._ranking(key).add(member, delta)

    def on_item_change(self, old: Item | None, new: Item | None, store: Any, tiers: Any) -> None:
        if old is not None:
            for key in self._keys(old)[1:]:
                self._ranking(key).remove(old.item_id)
            if new is None:
                self._ranking(ALL).remove(old.item_id)
        if new is not None:
            total = self.popularity(store, new.item_id)
            for key in self._keys(new):
                self._ranking(key).set(new.item_id, total)

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    def popularity(self, store: Any, item_id: str) -> float:
        item = self.vocabulary.items.get(item_id)
        return float(self.total[item]) if 0 <= item < len(self.total) else 0.0

    def popularities(self, store: Any, item_ids: Sequence[str]) -> list[float]:
        return [self.popularity(store, i) for i in item_ids]

    def ranked(self, store: Any, ranking: tuple[Any, ...]) -> Iterator[tuple[str, float]]:
        """Items of a popularity ranking: weighted total desc, item_id asc."""
        found = self.rankings.get(ranking)
        return iter(()) if found is None else found.iter_desc()

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        ids = self.vocabulary.items
        if key is not None:
            item = ids.get(key)
            items = [item] if item >= 0 else []
        else:
            items = np.flatnonzero(self.counts[: len(ids)].sum(axis=1)).tolist()
        out: list[Row] = []
        for item in items:
            counts = self.counts[item]
            if not counts.any():
                continue
            row: Row = {"item_id": ids.name(item)}
            row.update({f"{t}_count": int(counts[n]) for n, t in enumerate(self.types)})
            row["weighted_total"] = float(self.total[item])
            out.append(row)
        return out

    def arrays(self) -> dict[str, Any]:
        n = len(self.vocabulary.items)
        return {
            "counts": self.counts[:n],
            "total": self.total[:n],
            "rankings": {k: dict(r.scores) for k, r in self.rankings.items()},
        }

    def load(self, arrays: dict[str, Any]) -> None:
        self.counts = np.array(arrays["counts"], dtype=np.int32).reshape(-1, len(self.types))
        self.total = np.array(arrays["total"], dtype=np.float64)
        self.rankings = {}
        for key, scores in arrays["rankings"].items():
            ranking = self.rankings[key] = Ranking()
            ranking.scores.update(scores)

    def nbytes(self) -> int:
        return self.counts.nbytes + self.total.nbytes

    def used_bytes(self) -> int:
        n = len(self.vocabulary.items)
        return n * (self.counts.itemsize * len(self.types) + self.total.itemsize)

    def forget_users(self, dead: Any) -> None:
        """Keyed by item: what a forgotten user added stays (an anonymous aggregate)."""

    def forget_items(self, dead: Any) -> None:
        """A deleted item's counters restart at zero (its rankings were left by ``on_item_change``)."""
        ids = np.flatnonzero(dead[: len(self.total)])
        self.counts[ids] = 0
        self.total[ids] = 0.0
