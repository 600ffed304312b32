"""``freshrec eval``: load a data set, embed its items once, run the replays and the MS protocol in
parallel worker processes (one per mode), with progress bars, and assemble the SPEC §6 JSON."""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from freshrec.catalog import Catalog, ItemIn
from freshrec.config import Settings
from freshrec.content import ContentIndex
from freshrec.datasets.movielens import RatingMapping
from freshrec.evaluation.data import EvalData, load
from freshrec.evaluation.msprotocol import ms_protocol
from freshrec.evaluation.replay import DAY, Mode, replay
from freshrec.tiers import PriceTiers

DEFAULT_STRATEGIES = (
    "trending",
    "personalized",
    "session",
    "trending_for_you",
    "covisit",
    "similar_content",
    "cf",
    "hybrid",
)


@dataclass(slots=True)
class EvalOptions:
    dataset: str
    path: Path
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    k: int = 10
    sample: float = 1.0
    seed: int = 0
    modes: tuple[Mode, ...] = ("fresh", "stale")
    ms_protocol: bool | None = None  # None: on MovieLens only
    workers: int = field(default_factory=lambda: max(1, min(3, os.cpu_count() or 1)))
    mapping: RatingMapping = field(default_factory=RatingMapping)
    period: float = DAY  # how often stale state is refreshed (and CF retrained, in both modes)
    stale_exclusions: Literal["state", "all"] = "state"


def eval_settings(settings: Settings, dim: int | None, seed: int) -> Settings:
    """The user's settings, on the event clock, with precomputed vectors and no background training."""
    embeddings = settings.embeddings.model_copy(
        update={"model": f"precomputed:{dim}" if dim is not None else "none"}
    )
    cf = settings.cf.model_copy(update={"retrain_every_seconds": 0.0, "threads": 1, "seed": seed})
    return settings.model_copy(update={"clock": "event", "embeddings": embeddings, "cf": cf})


def embed_items(
    data: EvalData, settings: Settings, progress: Callable[[int, int], None] | None = None
) -> int | None:
    """Give every item its vector (computed once here, not in every worker); returns the dimension."""
    if settings.embeddings.model == "none":
        return None
    index = ContentIndex(settings.embeddings, Catalog(PriceTiers(settings.price_tiers)))
    assert index.embedder is not None
    size = 256
    for start in range(0, len(data.items), size):
        chunk = data.items[start : start + size]
        prepared = index.prepare([ItemIn.model_validate(i) for i in chunk])
        for record, item in zip(chunk, prepared, strict=True):
            if item.embedding is not None:
                record["embedding"] = item.embedding
        if progress is not None:
            progress(min(start + size, len(data.items)), len(data.items))
    return index.embedder.dim


def _replay_job(
    data: EvalData, settings: Settings, options: EvalOptions, mode: Mode, updates: Any
) -> dict[str, Any]:
    outcome = replay(
        data,
        settings,
        options.strategies,
        mode,
        k=options.k,
        sample=options.sample,
        seed=options.seed,
        progress=lambda n: updates.put((mode, n)),
        period=options.period,
        stale_exclusions=options.stale_exclusions,
    )
    return {
        "scores": outcome.scores,
        "targets": outcome.targets,
        "returning": outcome.returning,
        "returning_targets": outcome.returning_targets,
        "seconds": outcome.seconds,
        "trainings": outcome.trainings,
        "ranker_trainings": outcome.ranker_trainings,
        "ranker": outcome.ranker,
        "request_ms": outcome.request_ms,
    }


def _ms_job(data: EvalData, settings: Settings, options: EvalOptions, updates: Any) -> dict[str, Any]:
    return ms_protocol(
        data,
        settings,
        options.strategies,
        k=options.k,
        seed=options.seed,
        progress=lambda n: updates.put(("ms", n)),
    )


def run(options: EvalOptions, settings: Settings, console: Console | None = None) -> dict[str, Any]:
    """Evaluate and return the SPEC §6 JSON object (with a ``meta`` section)."""
    console = console or Console(stderr=True, quiet=True)
    started = time.perf_counter()
    with console.status(f"reading {options.dataset} from {options.path} ..."):
        data = load(options.dataset, options.path, settings, options.mapping)
    console.print(f"{data.name}: {len(data.items):,} items, {len(data.events):,} events")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        if settings.embeddings.model != "none" and data.items:
            task = bars.add_task("embedding items", total=len(data.items))
            dim = embed_items(data, settings, lambda done, _: bars.update(task, completed=done))
        else:
            dim = None
        worker_settings = eval_settings(settings, dim, options.seed)
        run_ms = options.ms_protocol if options.ms_protocol is not None else options.dataset == "movielens"
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, ProcessPoolExecutor(options.workers, mp_context=context) as pool:
            updates = manager.Queue()
            tasks: dict[str, Any] = {}
            futures: dict[str, Future[dict[str, Any]]] = {}
            for mode in options.modes:
                tasks[mode] = bars.add_task(f"replay {mode}", total=len(data.events))
                futures[mode] = pool.submit(_replay_job, data, worker_settings, options, mode, updates)
            if run_ms:
                tasks["ms"] = bars.add_task("MS protocol (strategies)", total=len(options.strategies))
                futures["ms"] = pool.submit(_ms_job, data, worker_settings, options, updates)
            while not all(f.done() for f in futures.values()):
                try:
                    name, done = updates.get(timeout=0.5)
                    bars.update(tasks[name], completed=done)
                except queue.Empty:
                    pass
            results = {name: f.result() for name, f in futures.items()}
            for task in tasks.values():
                bars.update(task, completed=bars.tasks[task].total or 1, total=bars.tasks[task].total or 1)
    replay_out: dict[str, dict[str, Any]] = {}
    for name in options.strategies:
        replay_out[name] = {mode: results[mode]["scores"][name] for mode in options.modes}
    out: dict[str, Any] = {"dataset": data.name, "replay": replay_out}
    if run_ms:
        out["ms_protocol"] = results["ms"]["scores"]
    out["meta"] = {
        "k": options.k,
        "seed": options.seed,
        "sample": options.sample,
        "refresh_seconds": options.period,
        "stale_exclusions": options.stale_exclusions,
        "events": len(data.events),
        "items": len(data.items),
        "catalog_size": data.catalog_size,
        "targets": {mode: results[mode]["targets"] for mode in options.modes},
        "returning_targets": {mode: results[mode]["returning_targets"] for mode in options.modes},
        "returning": {
            name: {mode: results[mode]["returning"][name] for mode in options.modes}
            for name in options.strategies
        },
        "replay_seconds": {mode: results[mode]["seconds"] for mode in options.modes},
        "cf_trainings": {mode: results[mode]["trainings"] for mode in options.modes},
        "ranker_trainings": {mode: results[mode]["ranker_trainings"] for mode in options.modes},
        "ranker": {mode: results[mode]["ranker"] for mode in options.modes},
        "request_ms": {mode: results[mode]["request_ms"] for mode in options.modes},
        "ms_protocol": {k: v for k, v in results["ms"].items() if k != "scores"} if run_ms else None,
        "embeddings": settings.embeddings.model if dim is not None else "none",
        "seconds": round(time.perf_counter() - started, 1),
    }
    return out
