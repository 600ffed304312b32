"""Exact top-k for scores that depend on an item only through ``(category, brand, price tier)``.

Items of one catalog group share a score, so the groups the user touches (their categories and brands)
are scored one by one, items inside a group are ordered by popularity, and the rest of the catalog is
walked in popularity order as one pool per price tier (a tier part alone) and one zero-score pool. The
result equals sorting every catalog item by the full definition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from freshrec.catalog import GroupTable
from freshrec.ranking.base import (
    Entry,
    Features,
    Request,
    constant_source,
    make_filter,
    merge,
    rounded,
    sorted_group,
    take,
)
from freshrec.views import popularity


@dataclass(frozen=True, slots=True)
class GroupScore:
    """A score additive in the group's parts: ``scale·(category + brand + tier) + extra[category]``.

    Computed for one group by calling it, and for every group of the catalog at once by :meth:`of_groups`,
    with the same operations in the same order (so the same floats).
    """

    category: Mapping[Any, float]  # by name (a missing part, None, counts 0)
    brand: Mapping[Any, float]
    tier: Mapping[Any, float]
    scale: float = 1.0
    extra: Mapping[Any, float] = field(default_factory=dict)

    def __call__(self, category: str | None, brand: str | None, tier: str | None) -> float:
        base = self.category.get(category, 0.0) + self.brand.get(brand, 0.0) + self.tier.get(tier, 0.0)
        return self.scale * base + self.extra.get(category, 0.0)

    def of_groups(self, table: GroupTable) -> npt.NDArray[np.float64]:
        base = table.lookup(0, self.category) + table.lookup(1, self.brand) + table.lookup(2, self.tier)
        scores: npt.NDArray[np.float64] = self.scale * base + table.lookup(0, self.extra)
        return scores


def rank_by_groups(
    features: Features,
    request: Request,
    score_of: GroupScore,
    user_categories: set[str],
    user_brands: set[str],
) -> list[tuple[str, float]]:
    catalog = features.catalog
    # the pools of the items outside the user's groups: a level's sources are built when the walk gets there
    pools: dict[float, list[Callable[[], Iterator[Entry]]]] = {}
    if request.category is None:
        _add_pools(features, score_of, user_categories, user_brands, pools)
    # the user's groups (or the requested category's), scored at once and walked best first
    table = catalog.group_table()
    if request.category is not None:
        chosen = table.lookup(0, {request.category: 1.0}) > 0.0
    else:
        chosen = (table.lookup(0, dict.fromkeys(user_categories, 1.0)) > 0.0) | (
            table.lookup(1, dict.fromkeys(user_brands, 1.0)) > 0.0
        )
    at = np.flatnonzero(chosen)
    raw = score_of.of_groups(table)[at]
    order = np.argsort(-raw, kind="stable")
    groups = at[order].tolist()
    values = raw[order].tolist()
    keys = table.keys
    pool_levels = sorted(pools, reverse=True)
    accept = make_filter(features, request)
    out: list[tuple[str, float]] = []
    g = p = 0
    while len(out) < request.k and (g < len(groups) or p < len(pool_levels)):
        # the next level: the best rounded score of the groups and pools not walked yet
        group_level = rounded(values[g]) if g < len(groups) else None
        pool_level = pool_levels[p] if p < len(pool_levels) else None
        level = max(v for v in (group_level, pool_level) if v is not None)
        sources: list[Iterator[Entry]] = []
        while g < len(groups) and rounded(values[g]) == level:
            sources.append(sorted_group(features, level, keys[groups[g]]))
            g += 1
        if pool_level == level:
            sources.extend(make() for make in pools[level])
            p += 1
        out.extend(take(merge(sources), accept, request.k - len(out)))
    return out


def _add_pools(
    features: Features,
    score_of: GroupScore,
    user_categories: set[str],
    user_brands: set[str],
    pools: dict[float, list[Callable[[], Iterator[Entry]]]],
) -> None:
    """One pool per scored price tier (items of no user group, by popularity) and one at score 0."""
    catalog = features.catalog
    scored_tiers: set[str | None] = set()
    items = catalog.items

    def unmatched(tier_also: bool) -> Callable[[str], bool]:
        def test(item_id: str) -> bool:
            item = items.get(item_id)
            if item is None or item.category in user_categories or item.brand in user_brands:
                return False
            return not (tier_also and catalog.tiers.of(item.price) in scored_tiers)

        return test

    def pool(score: float, ranking: tuple[Any, ...], tier_also: bool) -> Callable[[], Iterator[Entry]]:
        keep = unmatched(tier_also)
        return lambda: constant_source(score, _where(features.by_popularity(ranking), keep))

    for tier in list(catalog.groups_by_tier):
        score = rounded(score_of(None, None, tier))
        if score != 0.0:
            scored_tiers.add(tier)
            pools.setdefault(score, []).append(pool(score, ("tier", tier), False))
    pools.setdefault(0.0, []).append(pool(0.0, popularity.ALL, True))


def _where(ranked: Iterator[tuple[str, float]], keep: Callable[[str], bool]) -> Iterator[tuple[str, float]]:
    return ((item_id, pop) for item_id, pop in ranked if keep(item_id))


def group_of_item(features: Features, item_id: str) -> tuple[str | None, str | None, str | None]:
    item = features.catalog.items.get(item_id)
    if item is None:
        return (None, None, None)
    return features.catalog.group_of(item)


def explain_parts(parts: dict[str, float]) -> dict[str, Any]:
    return {name: round(value, 6) for name, value in parts.items()}
