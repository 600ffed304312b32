"""Time-ordered replay, predict-then-learn (SPEC §8), through the engine the server runs.

For every target event the user's top K is asked *before* the event is applied; then the event is applied.
``fresh`` applies every event at once (the CF model is retrained daily and each user's newest events are
folded in per request); ``stale`` applies events in one batch at each midnight (UTC) and retrains CF then,
so every answer comes from state frozen at the previous midnight — a nightly batch system. ``period``
changes "daily" (a data set spanning one hour, like the DataSQRL clickstream, needs minutes).

Items the user already interacted with are never recommended (in stale mode: those known at the last
refresh, as a nightly system would know them — ``stale_exclusions="all"`` lets stale leave out today's
items too, to separate that effect from the staleness of the scores), and a target the user already
interacted with is skipped: it is a repeat, not a discovery.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from freshrec.config import Settings
from freshrec.engine import Engine
from freshrec.evaluation.data import EvalData
from freshrec.evaluation.metrics import ReplayScores
from freshrec.events import Event
from freshrec.ranker.service import due

Mode = Literal["fresh", "stale"]
DAY = 86_400.0
ITEM_BATCH = 1000
Progress = Callable[[int], None]


@dataclass(slots=True)
class ReplayOutcome:
    mode: str
    scores: dict[str, dict[str, float]]
    targets: int
    seconds: float
    trainings: int
    ranker_trainings: int = 0
    ranker: dict[str, Any] | None = None  # the last ranker trained in the replay
    request_ms: dict[str, float] = field(default_factory=dict)
    #: the same metrics on the targets of users the last refresh already knew (a nightly system's best case)
    returning: dict[str, dict[str, float]] = field(default_factory=dict)
    returning_targets: int = 0


def sampled(event: Event, fraction: float, seed: int) -> bool:
    """Deterministic target sampling by event id and seed (the same targets in both modes)."""
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(f"{seed}|{event.event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def load_items(engine: Engine, items: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(items), ITEM_BATCH):
        engine.upsert_items(items[start : start + ITEM_BATCH])


def replay(
    data: EvalData,
    settings: Settings,
    strategies: Sequence[str],
    mode: Mode,
    k: int = 10,
    sample: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
    period: float = DAY,
    stale_exclusions: Literal["state", "all"] = "state",
) -> ReplayOutcome:
    """Replay ``data`` in ``mode`` and score every strategy on the same targets."""
    started = time.perf_counter()
    engine = Engine(settings)
    for name in strategies:
        if name not in engine.strategies:
            have = ", ".join(sorted(engine.strategies))
            raise ValueError(f"strategy {name!r} is not available; have {have}")
    load_items(engine, data.items)
    catalog = data.catalog_size
    scores = {name: ReplayScores(k, catalog) for name in strategies}
    returning = {name: ReplayScores(k, catalog) for name in strategies}
    known: set[str] = set()  # users with events before the last refresh
    returning_targets = 0
    spent = dict.fromkeys(strategies, 0.0)
    seen: dict[str, set[str]] = defaultdict(set)  # what the answering state knows the user touched
    touched: dict[str, set[str]] = defaultdict(set)  # what the user really touched so far
    pending: list[Event] = []  # stale: events of the current day, applied at midnight
    day: float | None = None
    targets = 0
    trainings = 0
    ranker_trainings = 0
    dim = engine.content.vectors.dim if engine.content.vectors is not None else None
    for n, event in enumerate(data.events, 1):
        today = math.floor(event.ts / period)
        if today != day:
            if pending:
                engine.apply_events(engine.new_events(pending))
                for old in pending:
                    seen[old.user_id].add(old.item_id)
                pending = []
            known.update(touched)
            if day is not None and engine.cf.settings.enabled:
                engine.cf.fit(engine.cf.collect(engine.store, engine.applied_events))
                trainings += 1
            if day is not None and "hybrid" in strategies and due(engine.ranker, n - 1):
                engine.ranker.train(settings, data.items, data.events[: n - 1], dim)
                ranker_trainings += 1
            day = today
        user_seen = seen[event.user_id]
        user_touched = touched[event.user_id]
        if data.is_target(event) and event.item_id not in user_touched and sampled(event, sample, seed):
            targets += 1
            is_returning = event.user_id in known
            returning_targets += is_returning
            for name in strategies:
                t0 = time.perf_counter()
                excluded = user_touched if stale_exclusions == "all" else user_seen
                recs = engine.recommend(event.user_id, name, k=k, exclude=excluded)
                spent[name] += time.perf_counter() - t0
                ids = [r.item_id for r in recs]
                scores[name].add(ids, event.item_id)
                if is_returning:
                    returning[name].add(ids, event.item_id)
        user_touched.add(event.item_id)
        if mode == "fresh":
            engine.apply_events(engine.new_events([event]))
            user_seen.add(event.item_id)
        else:
            pending.append(event)
        if progress is not None and n % 1000 == 0:
            progress(n)
    if progress is not None:
        progress(len(data.events))
    return ReplayOutcome(
        mode=mode,
        scores={name: s.result() for name, s in scores.items()},
        targets=targets,
        returning={name: s.result() for name, s in returning.items()},
        returning_targets=returning_targets,
        seconds=round(time.perf_counter() - started, 1),
        trainings=trainings,
        ranker_trainings=ranker_trainings,
        ranker=engine.ranker.status()["model"],
        request_ms={n: round(1000 * t / max(1, targets), 3) for n, t in spent.items()},
    )
