"""Serving through an experiment: assign the user, answer with the variant's strategy, log the exposure.

The exposure is durable before the answer leaves: written to the data directory's log (and applied) in
embedded mode, acknowledged by the broker in distributed mode (a worker applies it, see
:mod:`freshrec.experiments.shared`). So an answer a client saw is never missing from the results, whatever
happens to the process afterwards.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from freshrec.engine import Engine
from freshrec.errors import InvalidInput
from freshrec.experiments.model import Experiment, ExperimentIn
from freshrec.ranking.base import Recommendation


class Journaling(Protocol):
    """What of the server runtime experiments use: the engine, the write lock and the journal."""

    engine: Engine
    write_lock: asyncio.Lock
    #: False where exposures cannot be logged durably yet (distributed mode)
    experiments_supported: bool

    def recommend(
        self, user_id: str, strategy: str, **options: Any
    ) -> tuple[list[Recommendation], str | None]: ...

    async def journal_and_apply(self, records: list[dict[str, Any]], apply: Callable[[], Any]) -> Any: ...


class Publishing(Protocol):
    """A distributed runtime: exposures go to the events topic."""

    async def publish_exposure(self, record: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class Answer:
    experiment: Experiment
    variant: str | None  # None: the experiment is not active (the baseline serves, nothing is logged)
    strategy: str
    recommendations: list[Recommendation]
    degraded: str | None


def _supported(rt: Journaling) -> None:
    if not rt.experiments_supported:
        raise InvalidInput("experiments are not served by this runtime", status=501)


async def recommend(
    rt: Journaling,
    user_id: str,
    request_id: str,
    experiment_id: str | None,
    surface: str | None,
    **options: Any,
) -> Answer:
    """The user's recommendations from their variant of the experiment (named, or the surface's)."""
    _supported(rt)
    registry = rt.engine.experiments
    experiment = (
        registry.get(experiment_id) if experiment_id is not None else registry.for_surface(surface or "")
    )
    if not experiment.active:
        baseline = experiment.variants[0]
        recs, degraded = rt.recommend(user_id, baseline.strategy, **{**options, **baseline.params})
        return Answer(experiment, None, baseline.strategy, recs, degraded)
    variant = experiment.assign(user_id)
    recs, degraded = rt.recommend(user_id, variant.strategy, **{**options, **variant.params})
    record = registry.exposure_record(
        request_id, experiment, variant, user_id, [r.item_id for r in recs], rt.engine.now()
    )
    if registry.published:
        await cast(Publishing, rt).publish_exposure(record)
    else:
        await _groups(rt).log(record)
    return Answer(experiment, variant.name, variant.strategy, recs, degraded)


class ExposureGroups:
    """Exposures made durable in groups: one log write and one fsync for all the exposures that arrived
    while the previous group was being written (group commit). Each answer still leaves only once its own
    exposure is on disk; under load a group holds every request that waited, at low traffic one."""

    def __init__(self, rt: Journaling) -> None:
        self.rt = rt
        self.pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self.writer: asyncio.Task[None] | None = None  # writes groups while any exposure is pending
        self.groups = 0  # groups written (exposures / groups = the mean group size)

    async def log(self, record: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((record, future))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write_all())
        await future

    async def _write_all(self) -> None:
        registry = self.rt.engine.experiments
        while self.pending:
            group, self.pending = self.pending, []
            records = [r for r, _ in group]

            def apply(records: list[dict[str, Any]] = records) -> None:
                for record in records:
                    registry.apply_record(record)

            try:
                async with self.rt.write_lock:
                    await self.rt.journal_and_apply(records, apply)
            except Exception as exc:  # nothing of this group is acknowledged
                for _, future in group:
                    future.set_exception(exc)
                continue
            self.groups += 1
            for _, future in group:
                future.set_result(None)


_GROUPS: weakref.WeakKeyDictionary[Any, ExposureGroups] = weakref.WeakKeyDictionary()


def _groups(rt: Journaling) -> ExposureGroups:
    groups = _GROUPS.get(rt)
    if groups is None:
        groups = _GROUPS[rt] = ExposureGroups(rt)
    return groups


async def declare_configured(rt: Journaling) -> list[str]:
    """Declare the settings file's experiments: new ones, and changed ones not ended through the API."""
    if not rt.experiments_supported:
        return []
    declared = []
    for experiment_id, raw in rt.engine.settings.experiments.items():
        spec = ExperimentIn.model_validate(raw)
        current = rt.engine.experiments.declared.get(experiment_id)
        if current is not None and (current.ended_at is not None or current.spec() == spec.model_dump()):
            continue
        await put(rt, experiment_id, spec)
        declared.append(experiment_id)
    return declared


async def put(rt: Journaling, experiment_id: str, spec: ExperimentIn) -> dict[str, Any]:
    _supported(rt)
    engine = rt.engine
    async with rt.write_lock:
        record = engine.experiments.put_record(experiment_id, spec, engine.strategies, engine.now())
        await rt.journal_and_apply([record], lambda: engine.experiments.apply_record(record))
    return engine.experiments.get(experiment_id).to_json()


async def end(rt: Journaling, experiment_id: str) -> dict[str, Any]:
    _supported(rt)
    engine = rt.engine
    async with rt.write_lock:
        record = engine.experiments.end_record(experiment_id, engine.now())
        await rt.journal_and_apply([record], lambda: engine.experiments.apply_record(record))
    return engine.experiments.get(experiment_id).to_json()
