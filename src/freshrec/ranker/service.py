"""The current ranker of an engine: trained from a replay of the log, persisted and swapped atomically.

Like the CF service: a request reads ``service.model`` once; a training builds the new model aside and
replaces the reference in one assignment, so serving never sees half a model and never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freshrec.catalog import ItemIn
from freshrec.config import RankerSettings, Settings
from freshrec.errors import Stopped
from freshrec.events import Event
from freshrec.ranker.examples import Progress, replay_examples
from freshrec.ranker.model import RankerModel
from freshrec.ranker.train import fit

log = logging.getLogger(__name__)
MODEL_FILE = "ranker-lgbm.json"
ITEM_FIELDS = frozenset(ItemIn.model_fields) - {"embedding"}


class RankerService:
    def __init__(self, settings: RankerSettings) -> None:
        self.settings = settings
        self.model: RankerModel | None = None
        self.model_dir: Path | None = None
        self.trainings = 0
        self.last_error: str | None = None
        self._training = threading.Lock()

    @property
    def training(self) -> bool:
        return self._training.locked()

    def attach(self, model_dir: Path) -> None:
        """Persist rankers in ``model_dir`` and load the one saved there, if any."""
        self.model_dir = model_dir
        path = model_dir / MODEL_FILE
        if not path.exists():
            return
        try:
            self.model = RankerModel.load(path)
        except ValueError as exc:
            kept = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
            path.rename(kept)
            self.last_error = f"{exc}; moved to {kept.name}"
            log.error("%s", self.last_error)
            return
        log.info("loaded ranker v%d (%d trees)", self.model.info.version, self.model.info.trees)

    def train(
        self,
        settings: Settings,
        items: Sequence[dict[str, Any]],
        events: Sequence[Event],
        dim: int | None = None,
        progress: Progress | None = None,
        rounds: Progress | None = None,
    ) -> RankerModel | None:
        """Replay ``events`` over ``items``, train, and swap the result in (one training at a time).

        ``progress(point, points)`` follows the replay, ``rounds(tree, trees)`` the boosting; either may
        raise (:class:`Stopped` at shutdown) to give up, keeping the current ranker."""
        with self._training:
            version = (self.model.info.version + 1) if self.model is not None else 1
            try:
                started = time.perf_counter()
                examples = replay_examples(settings, items, events, dim, progress)
                replayed = time.perf_counter() - started
                model = fit(examples, self.settings, version, rounds)
            except Stopped:
                log.info("ranker training stopped: the server is stopping; the previous ranker stays")
                raise
            except Exception as exc:  # a failed training keeps the current ranker serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("ranker training failed; the previous ranker keeps serving")
                raise
            if model is None:
                return None
            model.info.metrics["replay_seconds"] = round(replayed, 3)
            model.info.seconds = round(model.info.seconds + replayed, 3)
            self.swap(model)
            log.info(
                "ranker v%d trained in %.1fs on %d replay points of %d events: held-out %s",
                version,
                model.info.seconds,
                model.info.queries,
                model.info.events,
                model.info.metrics,
            )
            return model

    def swap(self, model: RankerModel) -> None:
        """Persist ``model`` (when attached) and serve it from the next request on."""
        if self.model_dir is not None:
            model.save(self.model_dir / MODEL_FILE)
        self.model = model
        self.trainings += 1
        self.last_error = None

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.enabled,
            "training": self.training,
            "trainings": self.trainings,
            "last_error": self.last_error,
            "model": None if self.model is None else self.model.info.to_json(),
        }


def catalog_records(engine: Any) -> tuple[list[dict[str, Any]], int | None]:
    """The engine's catalog as item records (with their vectors) for a training replay, and the dimension."""
    vectors = engine.content.vectors
    dim = vectors.dim if vectors is not None else None
    out: list[dict[str, Any]] = []
    for item in engine.catalog.iter_items():
        if item.observed:
            continue  # items first seen in events are observed again in the replay
        record = {k: v for k, v in item.to_json().items() if k in ITEM_FIELDS and v is not None}
        record["created_at"] = item.created_at
        if vectors is not None:
            v = vectors.vector(item.item_id)
            if v is not None:
                record["embedding"] = [float(a) for a in v]
        out.append(record)
    return out, dim


def log_events(records: Any) -> list[Event]:
    """The events of journal records (the data directory's log), in log order."""
    out: list[Event] = []
    for record in records:
        if record.get("op") == "events":
            out.extend(Event.from_record(r) for r in record["events"])
    return out


def due(service: RankerService, applied: int) -> bool:
    """A replay evaluation retrains once the log has grown by ``retrain_growth`` since the last training."""
    s = service.settings
    if not s.enabled or applied < s.min_events:
        return False
    model = service.model
    return model is None or applied >= s.retrain_growth * model.info.events
