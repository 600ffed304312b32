"""Training: interactions -> confidence matrix -> ALS factors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import threadpoolctl

from freshrec.cf.model import CFModel, ModelInfo, new_solver
from freshrec.config import CFSettings

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class Interactions:
    """Every user's summed event weights per item, as a users × items sparse matrix."""

    user_ids: list[str]
    item_ids: list[str]
    matrix: sp.csr_matrix
    events: int
    confidence: str = "linear"

    @classmethod
    def build(
        cls,
        rows: Iterable[tuple[str, Mapping[str, float]]],
        events: int = 0,
        confidence: Callable[[float], float] = float,
    ) -> Interactions:
        """The matrix of ``confidence(summed weight)`` (rows without a positive weight are left out)."""
        user_ids: list[str] = []
        item_index: dict[str, int] = {}
        indptr = [0]
        columns: list[int] = []
        values: list[float] = []
        for user, weights in rows:
            kept = 0
            for item, weight in weights.items():
                if weight <= 0.0:
                    continue
                column = item_index.setdefault(item, len(item_index))
                columns.append(column)
                values.append(confidence(weight))
                kept += 1
            if kept:
                user_ids.append(user)
                indptr.append(indptr[-1] + kept)
        matrix = sp.csr_matrix(
            (
                np.asarray(values, dtype=np.float32),
                np.asarray(columns, dtype=np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(user_ids), len(item_index)),
        )
        matrix.sort_indices()
        return cls(user_ids, list(item_index), matrix, events)


def train(
    data: Interactions, settings: CFSettings, version: int = 1, progress: Progress | None = None
) -> CFModel | None:
    """An ALS model of ``data`` (None when there is nothing to learn from)."""
    if data.matrix.nnz == 0:
        return None
    started = time.perf_counter()
    solver = new_solver(
        settings.factors,
        settings.regularization,
        settings.alpha,
        settings.iterations,
        settings.threads,
        settings.seed,
    )
    callback = None
    if progress is not None:
        total = settings.iterations
        report = progress

        def callback(iteration: int, elapsed: float, loss: float) -> None:
            report(iteration + 1, total)

    with threadpoolctl.threadpool_limits(1, "blas"):
        solver.fit(data.matrix, show_progress=False, callback=callback)
    info = ModelInfo(
        version=version,
        trained_at=time.time(),
        events=data.events,
        users=len(data.user_ids),
        items=len(data.item_ids),
        interactions=int(data.matrix.nnz),
        seconds=round(time.perf_counter() - started, 3),
        factors=settings.factors,
        regularization=settings.regularization,
        alpha=settings.alpha,
        iterations=settings.iterations,
        confidence=data.confidence,
    )
    return CFModel(
        info=info,
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        user_factors=np.asarray(solver.user_factors, dtype=np.float32),
        item_factors=np.asarray(solver.item_factors, dtype=np.float32),
    )
