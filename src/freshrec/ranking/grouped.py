"""Exact top-k for scores that depend on an item only through ``(category, brand, price tier)``.

Items of one catalog group share a score, so the groups the user touches (their categories and brands)
are scored one by one, items inside a group are ordered by popularity, and the rest of the catalog is
walked in popularity order as one pool per price tier (a tier part alone) and one zero-score pool. The
result equals sorting every catalog item by the full definition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from freshrec.catalog import GroupKey
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

GroupScore = Callable[[str | None, str | None, str | None], float]


def rank_by_groups(
    features: Features,
    request: Request,
    score_of: GroupScore,
    user_categories: set[str],
    user_brands: set[str],
) -> list[tuple[str, float]]:
    catalog = features.catalog
    # a level's sources are built only when the walk reaches it: most answers need one or two levels
    levels: dict[float, list[Callable[[], Iterator[Entry]]]] = {}

    def add(score: float, source: Callable[[], Iterator[Entry]]) -> None:
        levels.setdefault(score, []).append(source)

    def group_source(score: float, group: GroupKey) -> Callable[[], Iterator[Entry]]:
        return lambda: sorted_group(features, score, group)

    if request.category is not None:
        for group in catalog.groups_in_category(request.category):
            score = rounded(score_of(*group))
            add(score, group_source(score, group))
    else:
        explicit: set[GroupKey] = set()
        for category in user_categories:
            explicit.update(catalog.groups_by_category.get(category, ()))
        for brand in user_brands:
            explicit.update(catalog.groups_by_brand.get(brand, ()))
        for group in explicit:
            score = rounded(score_of(*group))
            add(score, group_source(score, group))
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
                add(score, pool(score, ("tier", tier), False))
        add(0.0, pool(0.0, popularity.ALL, True))

    accept = make_filter(features, request)
    out: list[tuple[str, float]] = []
    for score in sorted(levels, reverse=True):
        out.extend(take(merge(source() for source in levels[score]), accept, request.k - len(out)))
        if len(out) >= request.k:
            break
    return out


def _where(ranked: Iterator[tuple[str, float]], keep: Callable[[str], bool]) -> Iterator[tuple[str, float]]:
    return ((item_id, pop) for item_id, pop in ranked if keep(item_id))


def group_of_item(features: Features, item_id: str) -> tuple[str | None, str | None, str | None]:
    item = features.catalog.items.get(item_id)
    if item is None:
        return (None, None, None)
    return features.catalog.group_of(item)


def explain_parts(parts: dict[str, float]) -> dict[str, Any]:
    return {name: round(value, 6) for name, value in parts.items()}
