"""A forked copy of the engine kept current by reading the writer's journal.

A reader starts as a ``fork`` of a process whose engine had applied the journal up to a known position. To
catch up it reads the records the writer appended since, up to the position the writer published, and
applies each with :meth:`Engine.apply_record` — the function recovery uses, so a reader's state is the state
recovery would rebuild, event for event (the records carry the wall-clock time they were applied at).
When the writer's model generation moved, the CF model and the ranker are loaded again from the data
directory's ``models/``, where the writer saved them before publishing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from freshrec.engine import Engine
from freshrec.storage.log import Position, read_range
from freshrec.workers.shared import SharedState

log = logging.getLogger(__name__)


class Follower:
    """Catches ``engine`` up with what the writer published in ``shared``."""

    def __init__(
        self, engine: Engine, shared: SharedState, data_dir: Path, position: Position, generation: int
    ) -> None:
        self.engine = engine
        self.shared = shared
        self.data_dir = data_dir
        self.log_dir = data_dir / "log"
        self.models_dir = data_dir / "models"
        self.position = position
        self.generation = generation
        #: journal records applied since the fork
        self.records = 0

    def behind(self) -> bool:
        position, generation = self.shared.read()
        return position != self.position or generation != self.generation

    def follow(self) -> int:
        """Apply what the writer published since the last call; returns how many records."""
        target, generation, duplicates = self.shared.read_all()
        self.engine.duplicate_events = duplicates
        applied = 0
        if target != self.position:
            engine = self.engine
            for record, end in read_range(self.log_dir, self.position, target):
                engine.apply_record(record)
                self.position = end
                applied += 1
            self.records += applied
        if generation != self.generation:
            self.engine.cf.attach(self.models_dir)
            self.engine.ranker.attach(self.models_dir)
            self.generation = generation
            log.debug("models reloaded at generation %d", generation)
        return applied
