"""``hybrid``: a weighted blend of strategies, with fallbacks and a cold-start answer.

Each source's scores are divided by its best score so that weights compare like with like; an item's
blended score is the weighted sum of its normalised scores (a source that did not return it counts 0).
When the blend has fewer than ``k`` items, the fallback strategies fill the rest in their own order; a
user with no history gets ``trending``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from freshrec.ranking.base import Features, Recommendation, Request, Strategy, rounded


class Hybrid:
    name = "hybrid"

    def __init__(self, features: Features, strategies: Mapping[str, Strategy]) -> None:
        self.features = features
        self.strategies = strategies

    def recommend(self, request: Request) -> list[Recommendation]:
        f = self.features
        s = f.settings.strategies
        if request.user_id is None or not f.history.has_history(f.store, request.user_id):
            out = self.strategies["trending"].recommend(request)
            if request.explain:
                for rec in out:
                    rec.reasons = {"cold_start": "trending", **(rec.reasons or {})}
            return out
        depth = max(request.k, s.hybrid_candidates_per_source)
        sub = replace(request, k=depth, explain=False)
        blended: dict[str, float] = {}
        parts: dict[str, dict[str, Any]] = {}
        for name, weight in s.hybrid_weights.items():
            if weight == 0.0:
                continue
            recs = self.strategies[name].recommend(sub)
            best = max((abs(r.score) for r in recs), default=0.0)
            if best == 0.0:
                continue
            for rec in recs:
                contribution = weight * rec.score / best
                if contribution == 0.0:
                    continue
                blended[rec.item_id] = blended.get(rec.item_id, 0.0) + contribution
                parts.setdefault(rec.item_id, {})[name] = round(contribution, 6)
        ranked = sorted(((-rounded(v), -f.pop(i), i) for i, v in blended.items() if v > 0.0))[: request.k]
        out = [Recommendation(i, -neg, parts[i] if request.explain else None) for neg, _, i in ranked]
        if len(out) < request.k:
            taken = {r.item_id for r in out}
            for name in s.hybrid_fallback:
                for rec in self.strategies[name].recommend(replace(request, k=request.k + len(taken))):
                    if rec.item_id in taken:
                        continue
                    taken.add(rec.item_id)
                    out.append(
                        Recommendation(rec.item_id, 0.0, {"fallback": name} if request.explain else None)
                    )
                    if len(out) >= request.k:
                        return out
        return out
