"""The current CF model of an engine: collected, trained, persisted and swapped in atomically.

Readers take ``service.model`` once per request; a retrain builds a new model aside and replaces the
reference in one assignment, so serving never waits for training and never sees half a model.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from freshrec.cf.model import CONFIDENCE, CFModel
from freshrec.cf.train import Interactions, Progress, train
from freshrec.config import CFSettings
from freshrec.errors import Stopped
from freshrec.state.base import StateStore
from freshrec.views.base import InteractionsReader

log = logging.getLogger(__name__)
MODEL_FILE = "cf-als.npz"


class CFService:
    def __init__(self, settings: CFSettings, user_items: InteractionsReader) -> None:
        self.settings = settings
        self.user_items = user_items
        self.model: CFModel | None = None
        self.model_dir: Path | None = None
        self.trainings = 0
        self.last_error: str | None = None
        self._training = threading.Lock()

    @property
    def training(self) -> bool:
        return self._training.locked()

    def attach(self, model_dir: Path) -> None:
        """Persist models in ``model_dir`` and load the one saved there, if any."""
        self.model_dir = model_dir
        path = model_dir / MODEL_FILE
        if not path.exists():
            return
        try:
            self.model = CFModel.load(path)
        except ValueError as exc:
            # serving goes on (cf answers from its fallbacks until the next training); the file is kept
            kept = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
            path.rename(kept)
            self.last_error = f"{exc}; moved to {kept.name}"
            log.error("%s", self.last_error)
            return
        log.info("loaded CF model v%d (%d users, %d items)", *self._sizes(self.model))

    def collect(self, store: StateStore, events: int) -> Interactions:
        """Every user's interactions now. Call it while no write is being applied."""
        items = self.user_items
        users = items.users(store)
        kind = self.settings.confidence
        data = Interactions.build(((u, items.weights(store, u)) for u in users), events, CONFIDENCE[kind])
        data.confidence = kind
        return data

    def fit(self, data: Interactions, progress: Progress | None = None) -> CFModel | None:
        """Train on ``data`` and swap the result in (safe in a worker thread; one training at a time)."""
        with self._training:
            version = (self.model.info.version + 1) if self.model is not None else 1
            try:
                model = train(data, self.settings, version, progress)
            except Stopped:
                log.info("CF training stopped: the server is stopping; the previous model stays")
                raise
            except Exception as exc:  # a failed retrain keeps the current model serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("CF training failed; the previous model keeps serving")
                raise
            if model is None:
                return None
            if self.model_dir is not None:
                model.save(self.model_dir / MODEL_FILE)
            self.model = model
            self.trainings += 1
            self.last_error = None
            log.info(
                "CF model v%d trained in %.1fs: %d users, %d items, %d interactions",
                version,
                model.info.seconds,
                model.info.users,
                model.info.items,
                model.info.interactions,
            )
            return model

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.enabled,
            "training": self.training,
            "trainings": self.trainings,
            "last_error": self.last_error,
            "model": None if self.model is None else self.model.info.to_json(),
        }

    @staticmethod
    def _sizes(model: CFModel) -> tuple[int, int, int]:
        return model.info.version, model.info.users, model.info.items
