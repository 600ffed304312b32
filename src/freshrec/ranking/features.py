"""The ranker's feature matrix: one row per candidate, read from the views through their reader protocols.

Everything user-side is read once per request (a few dicts from the views); item-side columns are looked up
per distinct category, brand and tier and broadcast to the candidates with numpy, so the cost grows with
the number of candidates only through array operations and one popularity / trending / co-visit read per
candidate. Missing values are NaN (the trees route them on their own).

Shares (``category_affinity`` and the like) are the item's category value divided by the user's total, so
that a long-time user and a new one are on one scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from freshrec.cf.service import CFService
from freshrec.ranking.base import Features
from freshrec.ranking.candidates import SOURCES, Candidates
from freshrec.vectors.base import VectorIndex
from freshrec.views.base import InteractionsReader
from freshrec.views.columnar.reads import co_visit_matrix, popularities
from freshrec.views.interest import UserInterest

LAST_ITEMS = 5  # co-visits are counted from the user's last distinct items

FEATURES: tuple[str, ...] = (
    *(f"{s}_score" for s in SOURCES),
    *(f"{s}_rank" for s in SOURCES),
    "sources",
    "category_affinity",
    "category_affinity_week",
    "category_recent",
    "category_recent_share",
    "brand_affinity",
    "tier_conversion",
    "popularity",
    "trending",
    "covisit_last_items",
    "covisit_last_item",
    "cf_prediction",
    "content_similarity",
    "category_last_seen",
    "same_category_as_last",
    "item_age",
    "user_events",
    "user_idle",
)
INDEX = {name: n for n, name in enumerate(FEATURES)}
FloatMatrix = npt.NDArray[np.float32]


@dataclass(slots=True)
class FeatureSources:
    """What the features are read from besides the views: the CF model and the item vectors."""

    features: Features
    cf: CFService | None = None
    user_items: InteractionsReader | None = None
    vectors: VectorIndex | None = None
    interest: UserInterest | None = None


@dataclass(slots=True)
class Keys:
    """One attribute of the candidates (category, brand, tier) as codes into its distinct values."""

    codes: npt.NDArray[np.int64]
    names: list[str | None]

    @classmethod
    def of(cls, keys: Sequence[str | None]) -> Keys:
        distinct: dict[str | None, int] = {}
        codes = np.fromiter(
            (distinct.setdefault(k, len(distinct)) for k in keys), dtype=np.int64, count=len(keys)
        )
        return cls(codes, list(distinct))

    def lookup(self, values: dict[str, float], scale: float = 1.0, missing: float = 0.0) -> FloatMatrix:
        """``values[key] / scale`` for every candidate (``missing`` when absent), one read per key."""
        table = np.array(
            [values[k] / scale if k is not None and k in values else missing for k in self.names],
            dtype=np.float64,
        )
        return table[self.codes].astype(np.float32)


def _share(values: dict[str, float]) -> float:
    total = sum(v for v in values.values() if v > 0.0)
    return total if total > 0.0 else 1.0


def build(sources: FeatureSources, user_id: str, now: float, candidates: Candidates) -> FloatMatrix:
    """The ``(candidates, FEATURES)`` matrix of ``user_id`` at ``now``."""
    f = sources.features
    store = f.store
    ids = candidates.item_ids
    n = len(ids)
    x = np.full((n, len(FEATURES)), np.nan, dtype=np.float32)
    if n == 0:
        return x
    k = len(SOURCES)
    x[:, :k] = candidates.scores.T
    x[:, k : 2 * k] = candidates.ranks.T
    x[:, INDEX["sources"]] = np.sum(~np.isnan(candidates.ranks), axis=0)

    items = f.catalog.items
    known = [items.get(i) for i in ids]
    categories = Keys.of([it.category if it is not None else None for it in known])
    brands = Keys.of([it.brand if it is not None else None for it in known])
    tier_of = f.catalog.tiers.of
    tiers = Keys.of([tier_of(it.price) if it is not None else None for it in known])

    profile = f.category_profile.affinities(store, user_id)
    x[:, INDEX["category_affinity"]] = categories.lookup(profile, _share(profile))
    week = f.category_affinity.current_affinities(store, user_id, now)
    x[:, INDEX["category_affinity_week"]] = categories.lookup(week, _share(week))
    recent = f.recent_activity.recent_scores(store, user_id, now)
    x[:, INDEX["category_recent"]] = categories.lookup(recent)
    x[:, INDEX["category_recent_share"]] = categories.lookup(recent, _share(recent))
    brand = f.brand_profile.affinities(store, user_id)
    x[:, INDEX["brand_affinity"]] = brands.lookup(brand, _share(brand))
    rates = {t: r for t, r in f.price_sensitivity.conversion_rates(store, user_id).items() if r is not None}
    x[:, INDEX["tier_conversion"]] = tiers.lookup(rates, missing=math.nan)

    x[:, INDEX["popularity"]] = np.log1p(popularities(f.popularity, store, ids))
    window = f.trending.current_window(now)
    trend = [f.trending.score(store, window, i) for i in ids]
    x[:, INDEX["trending"]] = np.array([math.nan if t is None else t for t in trend], dtype=np.float32)

    history = f.history.recent_items(store, user_id)
    last: list[str] = []
    last_seen: dict[str, float] = {}
    for item_id, _, ts in history:
        if len(last) < LAST_ITEMS and item_id not in last:
            last.append(item_id)
        it = items.get(item_id)
        if it is not None and it.category is not None and not it.observed:  # catalog categories only
            last_seen[it.category] = max(last_seen.get(it.category, ts), ts)
    x[:, INDEX["user_events"]] = len(history)
    if history:
        x[:, INDEX["user_idle"]] = now - max(ts for _, _, ts in history)
    if last:
        frequencies = co_visit_matrix(f.co_visits, store, last, ids)
        x[:, INDEX["covisit_last_items"]] = frequencies.sum(axis=1)
        x[:, INDEX["covisit_last_item"]] = frequencies[:, 0]
        first = items.get(last[0])
        if first is not None and first.category is not None:
            x[:, INDEX["same_category_as_last"]] = categories.lookup({first.category: 1.0})
    # seconds ago, in float64 before the float32 matrix (a timestamp itself would lose minutes)
    ago = {c: now - ts for c, ts in last_seen.items()}
    x[:, INDEX["category_last_seen"]] = categories.lookup(ago, missing=math.nan)
    created = np.array([it.created_at if it is not None else 0.0 for it in known], dtype=np.float64)
    # an item created "after" now (a catalog loaded before a replay of older events) has no age
    x[:, INDEX["item_age"]] = np.where((created > 0.0) & (created <= now), now - created, np.nan)

    x[:, INDEX["cf_prediction"]] = _cf_scores(sources, user_id, ids)
    x[:, INDEX["content_similarity"]] = _similarities(sources, user_id, ids)
    return x


def _cf_scores(sources: FeatureSources, user_id: str, ids: list[str]) -> FloatMatrix:
    out = np.full(len(ids), np.nan, dtype=np.float32)
    model = sources.cf.model if sources.cf is not None else None
    if model is None or sources.user_items is None or sources.cf is None:
        return out
    weights = sources.user_items.weights(sources.features.store, user_id)
    vector = model.user_vector(user_id, weights, sources.cf.settings.fold_in)
    if vector is None:
        return out
    index = model.item_index
    rows = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    found = rows >= 0
    out[found] = model.item_factors[rows[found]] @ vector
    return out


def _similarities(sources: FeatureSources, user_id: str, ids: list[str]) -> FloatMatrix:
    out = np.full(len(ids), np.nan, dtype=np.float32)
    if sources.vectors is None or sources.interest is None:
        return out
    centroid, _ = sources.interest.centroid(sources.features.store, user_id)
    if centroid is None:
        return out
    norm = float(np.linalg.norm(centroid))
    if norm == 0.0:
        return out
    query = np.asarray(centroid, dtype=np.float32) / norm
    vectors = sources.vectors
    for n, item_id in enumerate(ids):
        v = vectors.vector(item_id)
        if v is not None:
            length = float(np.linalg.norm(v))
            out[n] = float(np.dot(v, query)) / length if length > 0.0 else 0.0
    return out
