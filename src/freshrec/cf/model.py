"""A trained ALS model: ids, factors, and the ``implicit`` solver that folds a user's newest events in.

Fold-in solves the user's least-squares step against the fixed item factors (``implicit``'s
``recalculate_user``), so a request reflects every interaction up to that moment, including users who
were unknown at training time. Items unknown at training time have no factors; other strategies cover them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import threadpoolctl
from implicit.cpu.als import AlternatingLeastSquares

Matrix = npt.NDArray[np.float32]
FORMAT_VERSION = 1


def new_solver(
    factors: int, regularization: float, alpha: float, iterations: int, threads: int, seed: int
) -> Any:
    """An ``implicit`` CPU ALS solver (created with single-threaded BLAS, as ``implicit`` asks)."""
    with threadpoolctl.threadpool_limits(1, "blas"):
        return AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            num_threads=threads,
            random_state=seed,
        )


CONFIDENCE: dict[str, Callable[[float], float]] = {"linear": float, "sqrt": math.sqrt, "log1p": math.log1p}


@dataclass(slots=True)
class ModelInfo:
    """What a model was trained from, for ``/v1/admin/models`` and the training log."""

    version: int
    trained_at: float
    events: int
    users: int
    items: int
    interactions: int
    seconds: float
    factors: int
    regularization: float
    alpha: float
    iterations: int
    confidence: str = "linear"

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ModelInfo.__dataclass_fields__}


@dataclass(slots=True)
class CFModel:
    info: ModelInfo
    user_ids: list[str]
    item_ids: list[str]
    user_factors: Matrix
    item_factors: Matrix
    user_index: dict[str, int] = field(init=False)
    item_index: dict[str, int] = field(init=False)
    unit_items: Matrix = field(init=False)
    solver: Any = field(init=False)

    def __post_init__(self) -> None:
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}
        norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        self.unit_items = (self.item_factors / np.maximum(norms, 1e-12)).astype(np.float32)
        info = self.info
        self.solver = new_solver(info.factors, info.regularization, info.alpha, info.iterations, 1, 0)
        self.solver.item_factors = self.item_factors
        self.solver.user_factors = self.user_factors

    def user_row(self, weights: Mapping[str, float]) -> sp.csr_matrix | None:
        """The user's interactions with the model's items as a one-row confidence matrix."""
        index = self.item_index
        f = CONFIDENCE[self.info.confidence]
        known = sorted((index[i], f(w)) for i, w in weights.items() if i in index and w > 0.0)
        if not known:
            return None
        columns = np.fromiter((c for c, _ in known), dtype=np.int32, count=len(known))
        values = np.fromiter((w for _, w in known), dtype=np.float32, count=len(known))
        return sp.csr_matrix(
            (values, columns, np.array([0, len(known)], dtype=np.int32)), shape=(1, len(self.item_ids))
        )

    def user_vector(self, user_id: str, weights: Mapping[str, float], fold_in: bool = True) -> Matrix | None:
        """The user's factors: folded in from ``weights`` (their interactions now), else as trained."""
        if not fold_in:
            at = self.user_index.get(user_id)
            return None if at is None else self.user_factors[at]
        row = self.user_row(weights)
        if row is None:
            return None
        return np.asarray(self.solver.recalculate_user(0, row), dtype=np.float32)

    def scores(self, vector: Matrix) -> Matrix:
        """Predicted preference of every model item."""
        return np.asarray(self.item_factors @ vector, dtype=np.float32)

    def similar(self, item_id: str) -> Matrix | None:
        """Cosine similarity of every model item's factors to ``item_id``'s."""
        at = self.item_index.get(item_id)
        if at is None:
            return None
        return np.asarray(self.unit_items @ self.unit_items[at], dtype=np.float32)

    def contributions(
        self, weights: Mapping[str, float], item_id: str, n: int = 3
    ) -> list[tuple[str, float]]:
        """The user's items that contribute most to ``item_id``'s score (``implicit``'s ``explain``)."""
        row = self.user_row(weights)
        at = self.item_index.get(item_id)
        if row is None or at is None:
            return []
        _, top, _ = self.solver.explain(0, row, at, N=n)
        return [(self.item_ids[int(i)], float(s)) for i, s in top]

    # -- files ----------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model to ``path`` atomically (a temporary file renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    format=np.array(FORMAT_VERSION),
                    info=np.array(json.dumps(self.info.to_json())),
                    user_ids=np.array(json.dumps(self.user_ids)),
                    item_ids=np.array(json.dumps(self.item_ids)),
                    user_factors=self.user_factors,
                    item_factors=self.item_factors,
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> CFModel:
        """Read a saved model; ``ValueError`` naming the file when it is not one this version can read."""
        try:
            return cls._load(path)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a readable freshrec CF model ({exc})") from None

    @classmethod
    def _load(cls, path: Path) -> CFModel:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT_VERSION:
                raise ValueError(f"model format {int(data['format'])} is not supported")
            return cls(
                info=ModelInfo(**json.loads(str(data["info"]))),
                user_ids=json.loads(str(data["user_ids"])),
                item_ids=json.loads(str(data["item_ids"])),
                user_factors=np.asarray(data["user_factors"], dtype=np.float32),
                item_factors=np.asarray(data["item_factors"], dtype=np.float32),
            )
