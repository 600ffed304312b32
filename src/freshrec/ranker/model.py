"""A trained ranker: a LightGBM lambdarank booster over :data:`freshrec.ranking.features.FEATURES`.

Scoring goes through the booster's own batch predict over the candidates' numpy matrix; per-feature
contributions (for explanations) through ``pred_contrib``. The file is one JSON document (the booster's
text model and how it was trained), written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
FloatMatrix = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]


@dataclass(slots=True)
class RankerInfo:
    version: int
    trained_at: float
    events: int  # log events the training replay covered
    queries: int  # replay points (groups) with a positive among the candidates
    rows: int
    seconds: float
    trees: int
    features: list[str]
    #: offline metrics on the newest fifth of the replay points (held out from training)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["age_seconds"] = round(max(0.0, time.time() - self.trained_at), 1)
        return out


class RankerModel:
    def __init__(self, info: RankerInfo, booster: lgb.Booster) -> None:
        self.info = info
        self.booster = booster

    def predict(self, x: FloatMatrix) -> Scores:
        """The ranking score of every row."""
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)

    def contributions(self, x: FloatMatrix) -> Scores:
        """``(rows, features + 1)``: each feature's share of each row's score, the bias last."""
        return np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)

    def top_features(self, x: FloatMatrix, n: int = 3) -> list[dict[str, float]]:
        """The ``n`` features that moved each row's score most, with their contributions."""
        if len(x) == 0:
            return []
        contrib = self.contributions(x)[:, :-1]
        names = self.info.features
        out: list[dict[str, float]] = []
        for row in contrib:
            best = np.argsort(-np.abs(row), kind="stable")[:n]
            out.append({names[int(j)]: round(float(row[j]), 4) for j in best})
        return out

    # -- files ----------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"format": FORMAT_VERSION, "info": asdict(self.info), "model": self.booster.model_to_string()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(body, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> RankerModel:
        """Read a saved ranker; ``ValueError`` naming the file when it is not one this version reads."""
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body.get("format") != FORMAT_VERSION:
                raise ValueError(f"ranker format {body.get('format')!r} is not supported")
            info = RankerInfo(**body["info"])
            booster = lgb.Booster(model_str=body["model"])
        except (OSError, ValueError, KeyError, TypeError, lgb.basic.LightGBMError) as exc:
            raise ValueError(f"{path}: not a readable freshrec ranker ({exc})") from None
        return cls(info, booster)
