"""Serving cost of the hybrid ranker: features + batch predict for 200 candidates, and whole requests.

    python bench/ranker.py [--path ../shared/data/movielens-100k] [--requests 2000]

Loads MovieLens-100k (no embeddings), trains CF and the ranker from a replay of the log, then for
``--requests`` random users with history: gathers their candidates (every source), pads or cuts them to
200, and times (a) the feature matrix, (b) the batch predict over it, (c) both, and (d) a whole ``hybrid``
request (candidates from every source included). Prints p50 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.evaluation.data import load
from freshrec.evaluation.replay import load_items
from freshrec.ranking.base import Request
from freshrec.ranking.candidates import Candidates, gather
from freshrec.ranking.features import build

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-100k"
CANDIDATES = 200


def percentiles(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):.3f}  p99 {np.percentile(a, 99):.3f}  max {a.max():.3f} ms"


def padded(c: Candidates, engine: Engine, rng: random.Random) -> Candidates:
    """Exactly 200 candidates: cut, or topped up with catalog items no source proposed."""
    ids = list(c.item_ids[:CANDIDATES])
    have = set(ids)
    pool = list(engine.catalog.items)
    while len(ids) < CANDIDATES:
        pick = rng.choice(pool)
        if pick not in have:
            have.add(pick)
            ids.append(pick)
    n = min(len(c), CANDIDATES)
    scores = np.full((c.scores.shape[0], CANDIDATES), np.nan, dtype=np.float32)
    ranks = np.full_like(scores, np.nan)
    scores[:, :n] = c.scores[:, :n]
    ranks[:, :n] = c.ranks[:, :n]
    return Candidates(ids, scores, ranks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, default=DEFAULT)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = load_settings(clock="event", embeddings={"model": "none"}, cf={"retrain_every_seconds": 0})
    data = load("movielens", args.path, settings)
    engine = Engine(settings)
    load_items(engine, data.items)
    for start in range(0, len(data.events), 10_000):
        engine.apply_events(engine.new_events(data.events[start : start + 10_000]))
    engine.cf.fit(engine.cf.collect(engine.store, engine.applied_events))
    started = time.perf_counter()
    model = engine.ranker.train(settings, data.items, data.events)
    assert model is not None
    print(f"ranker trained in {time.perf_counter() - started:.1f}s: {model.info.trees} trees")
    rng = random.Random(args.seed)
    users = sorted({e.user_id for e in data.events})
    feature_ms: list[float] = []
    predict_ms: list[float] = []
    rank_ms: list[float] = []
    request_ms: list[float] = []
    for _ in range(args.requests):
        user = rng.choice(users)
        request = Request(user_id=user, k=10, now=engine.now(), purchased=engine.purchased_items(user))
        candidates = padded(
            gather(engine.features, engine.strategies, engine.item_strategies, request, 50), engine, rng
        )
        t0 = time.perf_counter()
        x = build(engine.feature_sources, user, request.now, candidates)
        t1 = time.perf_counter()
        model.predict(x)
        t2 = time.perf_counter()
        engine.recommend(user, "hybrid", k=10)
        t3 = time.perf_counter()
        feature_ms.append(1000 * (t1 - t0))
        predict_ms.append(1000 * (t2 - t1))
        rank_ms.append(1000 * (t2 - t0))
        request_ms.append(1000 * (t3 - t2))
    print(f"{args.requests} requests, {CANDIDATES} candidates, {len(model.info.features)} features")
    print(f"feature matrix          {percentiles(feature_ms)}")
    print(f"batch predict           {percentiles(predict_ms)}")
    print(f"features + predict      {percentiles(rank_ms)}")
    print(f"whole hybrid request    {percentiles(request_ms)}")


if __name__ == "__main__":
    main()
