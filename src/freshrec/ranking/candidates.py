"""Candidates of the learned ``hybrid``: what every source proposes for a user, with its score and rank.

Each source (``cf``, ``covisit``, ``personalized``, ``session``, ``trending``, ``similar_content`` and
``also_bought`` from the user's last items) is asked for its top ``depth`` under the request's filters; the
union is the candidate list, in first-proposed order, with one score and one rank per source (NaN where a
source did not propose the item).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from freshrec.ranking.base import Features, ItemStrategy, Request, Strategy

SOURCES = ("cf", "covisit", "personalized", "session", "trending", "similar_content", "also_bought")
ALSO_BOUGHT_FROM = 3  # also_bought for a user: from their last distinct items

FloatArray = npt.NDArray[np.float32]


@dataclass(slots=True)
class Candidates:
    item_ids: list[str]
    scores: FloatArray  # (len(SOURCES), n): the source's score, NaN when it did not propose the item
    ranks: FloatArray  # (len(SOURCES), n): 1-based rank in the source, NaN when not proposed

    def __len__(self) -> int:
        return len(self.item_ids)

    def sources_of(self, at: int) -> dict[str, int]:
        """``source -> rank`` of the sources that proposed candidate ``at``."""
        ranks = self.ranks[:, at]
        return {name: int(r) for name, r in zip(SOURCES, ranks.tolist(), strict=True) if not math.isnan(r)}


def _last_items(features: Features, user_id: str, n: int) -> list[str]:
    out: list[str] = []
    for item_id, _, _ in features.history.recent_items(features.store, user_id):
        if item_id not in out:
            out.append(item_id)
            if len(out) >= n:
                break
    return out


def _also_bought(
    features: Features, strategy: ItemStrategy, request: Request, depth: int
) -> list[tuple[str, float]]:
    """Items bought with the user's last items: the most users over any of them."""
    assert request.user_id is not None
    best: dict[str, float] = {}
    for item_id in _last_items(features, request.user_id, ALSO_BOUGHT_FROM):
        for rec in strategy.for_item(item_id, request):
            if rec.score > best.get(rec.item_id, 0.0):
                best[rec.item_id] = rec.score
    ranked = sorted(best.items(), key=lambda p: (-p[1], p[0]))
    return ranked[:depth]


def gather(
    features: Features,
    strategies: Mapping[str, Strategy],
    item_strategies: Mapping[str, ItemStrategy],
    request: Request,
    depth: int,
) -> Candidates:
    """Every source's top ``depth`` for ``request`` (a user request), merged."""
    sub = replace(request, k=depth, explain=False, fallback=False)
    proposed: list[list[tuple[str, float]]] = []
    for name in SOURCES:
        if name == "also_bought":
            also = item_strategies.get(name)
            proposed.append([] if also is None else _also_bought(features, also, sub, depth))
            continue
        strategy = strategies.get(name)
        recs = [] if strategy is None else strategy.recommend(sub)
        proposed.append([(r.item_id, r.score) for r in recs])
    index: dict[str, int] = {}
    for ranked in proposed:
        for item_id, _ in ranked:
            index.setdefault(item_id, len(index))
    n = len(index)
    scores = np.full((len(SOURCES), n), np.nan, dtype=np.float32)
    ranks = np.full((len(SOURCES), n), np.nan, dtype=np.float32)
    for s, ranked in enumerate(proposed):
        if not ranked:
            continue
        at = np.fromiter((index[i] for i, _ in ranked), dtype=np.int64, count=len(ranked))
        scores[s, at] = np.fromiter((v for _, v in ranked), dtype=np.float32, count=len(ranked))
        ranks[s, at] = np.arange(1, len(ranked) + 1, dtype=np.float32)
    return Candidates(list(index), scores, ranks)
