"""The learned ranking of ``hybrid``: candidates of every source, features, one batch predict.

The order is ``ranker score desc, lifetime popularity desc, item_id asc`` (the score rounded like every
strategy's). With ``explain``, each item says which sources proposed it (``source -> rank``), the ranker
version, and the features that moved its score most (LightGBM's per-feature contributions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from freshrec.ranker.service import RankerService
from freshrec.ranking.base import ItemStrategy, Recommendation, Request, Strategy
from freshrec.ranking.candidates import gather
from freshrec.ranking.features import FeatureSources, build

TOP_FEATURES = 3


@dataclass(slots=True)
class LearnedRanking:
    service: RankerService
    sources: FeatureSources
    item_strategies: Mapping[str, ItemStrategy]

    def rank(self, request: Request, strategies: Mapping[str, Strategy]) -> list[Recommendation] | None:
        """The top ``request.k`` by the current ranker; None when no ranker is trained."""
        model = self.service.model
        if model is None or request.user_id is None:
            return None
        f = self.sources.features
        depth = max(request.k, self.service.settings.candidates_per_source)
        candidates = gather(f, strategies, self.item_strategies, request, depth)
        if len(candidates) == 0:
            return []
        x = build(self.sources, request.user_id, request.now, candidates)
        scores = np.round(model.predict(x), 9)
        pops = np.asarray(f.pops(candidates.item_ids), dtype=np.float64)
        ids = candidates.item_ids
        # score desc, popularity desc, item_id asc: lexsort's last key is the primary one
        by_id = np.argsort(np.array(ids, dtype=object), kind="stable")
        order = by_id[np.lexsort((-pops[by_id], -scores[by_id]))][: request.k]
        if not request.explain:
            return [Recommendation(ids[i], float(scores[i])) for i in order]
        tops = model.top_features(x[order], TOP_FEATURES)
        return [
            Recommendation(
                ids[i],
                float(scores[i]),
                {
                    "ranker": model.info.version,
                    "sources": candidates.sources_of(int(i)),
                    "top_features": top,
                },
            )
            for i, top in zip(order.tolist(), tops, strict=True)
        ]
