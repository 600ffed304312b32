"""Training: examples -> LightGBM lambdarank, with offline metrics on the newest replay points.

The newest fifth of the replay points (by time) is held out: it stops the boosting early and gives the
offline metrics the model reports (HR@10 of the next item and nDCG@10 of the graded labels, beside the
same figures for the best single source ranking the same candidates).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from freshrec.config import RankerSettings
from freshrec.ranker.examples import Examples, Progress
from freshrec.ranker.model import RankerInfo, RankerModel
from freshrec.ranking.candidates import SOURCES
from freshrec.ranking.features import FEATURES

HELD_OUT = 0.2
K = 10


def group_metrics(
    order_of: list[npt.NDArray[np.int64]], labels: list[npt.NDArray[np.int32]], k: int = K
) -> dict[str, float]:
    """Mean HR@k (the label-2 item in the top k) and nDCG@k (gain 2^label - 1) over groups."""
    hits = 0.0
    ndcg = 0.0
    for order, y in zip(order_of, labels, strict=True):
        top = y[order[:k]]
        hits += float(np.any(top == 2))
        gains = (2.0 ** top.astype(np.float64)) - 1.0
        dcg = float(np.sum(gains / np.log2(np.arange(2, len(top) + 2))))
        ideal = np.sort(y)[::-1][:k]
        igains = (2.0 ** ideal.astype(np.float64)) - 1.0
        idcg = float(np.sum(igains / np.log2(np.arange(2, len(ideal) + 2))))
        ndcg += dcg / idcg if idcg > 0 else 0.0
    n = max(1, len(labels))
    return {f"hr@{k}": round(hits / n, 4), f"ndcg@{k}": round(ndcg / n, 4)}


def _split(ex: Examples) -> tuple[int, int]:
    """(groups, rows) of the training part; the rest is held out."""
    held = math.ceil(len(ex.groups) * HELD_OUT) if len(ex.groups) >= 10 else 0
    train_groups = len(ex.groups) - held
    return train_groups, int(sum(ex.groups[:train_groups]))


def fit(
    ex: Examples, settings: RankerSettings, version: int = 1, progress: Progress | None = None
) -> RankerModel | None:
    """A lambdarank model of ``ex`` (None when there is nothing to learn from); ``progress(tree, trees)``
    is called after each boosting round (it may raise to stop the training)."""
    if not ex.groups:
        return None
    started = time.perf_counter()
    train_groups, train_rows = _split(ex)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "ndcg_eval_at": [K],
        "num_leaves": settings.leaves,
        "learning_rate": settings.learning_rate,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": 0.9,
        "num_threads": settings.threads,
        "seed": settings.seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    names = list(FEATURES)
    train = lgb.Dataset(
        ex.x[:train_rows], ex.y[:train_rows], group=ex.groups[:train_groups], feature_name=names
    )
    valid_sets: list[lgb.Dataset] = []
    callbacks: list[Callable[..., Any]] = []
    if train_groups < len(ex.groups):
        valid = lgb.Dataset(
            ex.x[train_rows:], ex.y[train_rows:], group=ex.groups[train_groups:], reference=train
        )
        valid_sets = [valid]
        callbacks = [lgb.early_stopping(30, verbose=False)]
    if progress is not None:
        report, trees = progress, settings.trees

        def rounds(env: Any) -> None:
            report(env.iteration + 1, trees)

        callbacks.append(rounds)
    booster = lgb.train(params, train, settings.trees, valid_sets=valid_sets, callbacks=callbacks)
    if booster.best_iteration > 0:
        booster = booster.model_from_string(booster.model_to_string(num_iteration=booster.best_iteration))
    model = RankerModel(
        RankerInfo(
            version=version,
            trained_at=time.time(),
            events=ex.events,
            queries=len(ex.groups),
            rows=len(ex.y),
            seconds=0.0,
            trees=booster.num_trees(),
            features=names,
        ),
        booster,
    )
    model.info.metrics = held_out_metrics(model, ex, train_groups, train_rows)
    model.info.seconds = round(time.perf_counter() - started, 3)
    return model


def held_out_metrics(
    model: RankerModel, ex: Examples, train_groups: int, train_rows: int
) -> dict[str, object]:
    """The ranker and every single source on the held-out replay points (the same candidates)."""
    if train_groups >= len(ex.groups):
        return {"held_out_queries": 0}
    bounds = np.cumsum([train_rows, *ex.groups[train_groups:]])
    labels = [ex.y[a:b] for a, b in itertools.pairwise(bounds)]
    scores = model.predict(ex.x[train_rows:])
    ranker_orders = []
    for a, b in itertools.pairwise(bounds):
        ranker_orders.append(np.argsort(-scores[a - train_rows : b - train_rows], kind="stable"))
    out: dict[str, object] = {"held_out_queries": len(labels), **group_metrics(ranker_orders, labels)}
    sources: dict[str, dict[str, float]] = {}
    for s, name in enumerate(SOURCES):
        orders = []
        for a, b in itertools.pairwise(bounds):
            r = ex.ranks[a:b, s]
            orders.append(np.argsort(np.where(np.isnan(r), np.inf, r), kind="stable"))
        sources[name] = group_metrics(orders, labels)
    best = max(sources, key=lambda n: sources[n][f"ndcg@{K}"])
    out["best_source"] = best
    out["best_source_metrics"] = sources[best]
    return out
