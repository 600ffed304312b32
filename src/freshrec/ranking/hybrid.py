"""``hybrid``: a learned ranker over every source's candidates; without a trained ranker, a weighted blend.

With a ranker (:mod:`freshrec.ranking.learned`, trained from a replay of the log) hybrid ranks the union of
every source's candidates by it. Without one, it answers with the hand-set blend below.

Each source's scores are divided by its best score so that weights compare like with like; an item's
blended score is the weighted sum of its normalised scores (a source that did not return it counts 0).
When the blend has fewer than ``k`` items, the fallback strategies fill the rest in their own order; a
user with no history gets ``trending``.

Lifetime affinities grow with every event, so a long-time fan of one category would never see what they
are browsing right now. Hybrid therefore reserves *session-intent* slots (the 2nd, 5th, 8th, ... with the
default ``hybrid_intent_every = 3``) for the best ``session`` items of the categories the user has been most
active in over the recent windows, explained as ``{"session_intent": category}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from freshrec.ranking.base import Features, Recommendation, Request, Strategy, rounded
from freshrec.ranking.learned import LearnedRanking


class Hybrid:
    name = "hybrid"

    def __init__(
        self, features: Features, strategies: Mapping[str, Strategy], learned: LearnedRanking | None = None
    ) -> None:
        self.features = features
        self.strategies = strategies
        self.learned = learned

    def recommend(self, request: Request) -> list[Recommendation]:
        f = self.features
        s = f.settings.strategies
        if request.user_id is None or not f.history.has_history(f.store, request.user_id):
            out = self.strategies["trending"].recommend(request)
            if request.explain:
                for rec in out:
                    rec.reasons = {"cold_start": "trending", **(rec.reasons or {})}
            return out
        ranked = self.learned.rank(request, self.strategies) if self.learned is not None else None
        out = ranked if ranked is not None else self._with_intent(request, self._blend(request))
        if len(out) < request.k:
            taken = {r.item_id for r in out}
            for name in s.hybrid_fallback:
                fallback = self.strategies.get(name)
                if fallback is None:
                    continue
                for rec in fallback.recommend(replace(request, k=request.k + len(taken), fallback=False)):
                    if rec.item_id in taken:
                        continue
                    taken.add(rec.item_id)
                    out.append(
                        Recommendation(rec.item_id, 0.0, {"fallback": name} if request.explain else None)
                    )
                    if len(out) >= request.k:
                        return out
        return out

    def _blend(self, request: Request) -> list[Recommendation]:
        f = self.features
        s = f.settings.strategies
        depth = max(request.k, s.hybrid_candidates_per_source)
        sub = replace(request, k=depth, explain=False, fallback=False)
        blended: dict[str, float] = {}
        parts: dict[str, dict[str, Any]] = {}
        for name, weight in s.hybrid_weights.items():
            strategy = self.strategies.get(name)
            if weight == 0.0 or strategy is None:
                continue
            recs = strategy.recommend(sub)
            best = max((abs(r.score) for r in recs), default=0.0)
            if best == 0.0:
                continue
            for rec in recs:
                contribution = weight * rec.score / best
                if contribution == 0.0:
                    continue
                blended[rec.item_id] = blended.get(rec.item_id, 0.0) + contribution
                parts.setdefault(rec.item_id, {})[name] = round(contribution, 6)
        positive = [(i, v) for i, v in blended.items() if v > 0.0]
        pops = f.pops([i for i, _ in positive])
        ranked = sorted((-rounded(v), -p, i) for (i, v), p in zip(positive, pops, strict=True))[: request.k]
        return [Recommendation(i, -neg, parts[i] if request.explain else None) for neg, _, i in ranked]

    def _with_intent(self, request: Request, blended: list[Recommendation]) -> list[Recommendation]:
        """Interleave the best session items of the user's most recent categories into the blend."""
        f = self.features
        s = f.settings.strategies
        every = s.hybrid_intent_every
        if every <= 0 or request.user_id is None:
            return blended
        recent = f.recent_activity.recent_scores(f.store, request.user_id, request.now)
        if request.category is not None:
            recent = {c: v for c, v in recent.items() if c == request.category}
        focus = sorted(recent, key=lambda c: (-recent[c], c))[: s.hybrid_intent_categories]
        session = self.strategies["session"]
        queues = [
            (category, session.recommend(replace(request, category=category, explain=False)))
            for category in focus
        ]
        queues = [(c, q) for c, q in queues if q]
        if not queues:
            return blended
        scores = {r.item_id: r for r in blended}
        out: list[Recommendation] = []
        taken: set[str] = set()
        rest = iter(blended)
        turn = 0
        while len(out) < request.k:
            picked: Recommendation | None = None
            if len(out) % every == 1 and queues:
                category, queue = queues[turn % len(queues)]
                turn += 1
                while queue and queue[0].item_id in taken:
                    queue.pop(0)
                if queue:
                    rec = queue.pop(0)
                    base = scores.get(rec.item_id)
                    reasons = {"session_intent": category, **((base.reasons or {}) if base else {})}
                    picked = Recommendation(
                        rec.item_id, base.score if base else 0.0, reasons if request.explain else None
                    )
                else:
                    queues = [(c, q) for c, q in queues if q]
            if picked is None:
                picked = next((r for r in rest if r.item_id not in taken), None)
            if picked is None:
                leftovers = [r for _, q in queues for r in q if r.item_id not in taken]
                if not leftovers:
                    break
                picked = leftovers[0]
                if request.explain:
                    picked = Recommendation(picked.item_id, 0.0, {"session_intent": "more"})
            taken.add(picked.item_id)
            out.append(picked)
        return out
