"""The Microsoft Recommenders protocol (SPEC §8): stratified 75/25 split per user, top-10, ranking metrics.

Every interaction of the training part is applied to an engine in time order (the engine clock ends at
the last training event) and the CF model is trained on it; then each test user's top 10 is asked,
excluding what they interacted with in training (``remove_seen``), and scored against all their test items.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from freshrec.config import Settings
from freshrec.engine import Engine
from freshrec.evaluation.data import EvalData
from freshrec.evaluation.metrics import Interaction, ms_scores, stratified_split
from freshrec.evaluation.replay import load_items


def ms_protocol(
    data: EvalData,
    settings: Settings,
    strategies: Sequence[str],
    k: int = 10,
    seed: int = 0,
    ratio: float = 0.75,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    by_id = {e.event_id: e for e in data.events}
    rows = [Interaction(e.user_id, e.item_id, data.rating(e) or 1.0, e.ts, e.event_id) for e in data.events]
    train, test = stratified_split(rows, ratio=ratio, seed=seed)
    engine = Engine(settings)
    load_items(engine, data.items)
    train_events = sorted((by_id[r.key] for r in train), key=lambda e: e.ts)
    size = settings.events.max_batch
    for start in range(0, len(train_events), size):
        engine.apply_events(engine.new_events(train_events[start : start + size]))
    if settings.cf.enabled:
        engine.cf.fit(engine.cf.collect(engine.store, engine.applied_events))
    ranker = None
    if "hybrid" in strategies and settings.ranker.enabled:
        dim = engine.content.vectors.dim if engine.content.vectors is not None else None
        model = engine.ranker.train(settings, data.items, train_events, dim)
        ranker = None if model is None else model.info.to_json()
    seen: dict[str, set[str]] = defaultdict(set)
    for r in train:
        seen[r.user].add(r.item)
    relevant: dict[str, set[str]] = defaultdict(set)
    for r in test:
        relevant[r.user].add(r.item)
    users = sorted(relevant)
    scores: dict[str, dict[str, float]] = {}
    for n, name in enumerate(strategies):
        recommended = {
            user: [r.item_id for r in engine.recommend(user, name, k=k, exclude=seen[user])] for user in users
        }
        scores[name] = ms_scores(recommended, relevant, k)
        if progress is not None:
            progress(n + 1)
    return {
        "scores": scores,
        "train": len(train),
        "test": len(test),
        "users": len(users),
        "ranker": ranker,
        "seconds": round(time.perf_counter() - started, 1),
    }
