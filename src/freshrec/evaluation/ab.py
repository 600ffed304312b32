"""Offline A/B simulation: replay a data set through an experiment, as the server would run it.

Events are replayed in time order through one engine (predict, then learn). At every target event (a
strong interaction with an item the user has not touched before), the user is assigned their variant by the
same hash the server uses, gets that variant's top K — an **exposure**, logged into the engine's
experiments exactly as ``?experiment=`` logs it — and the held-out item counts as a **click** on that
exposure when it is among the K (attributed through the same rules as online, by ``request_id``). Then the
event is applied. The results are the server's results, with the same intervals and tests, plus the number
of exposures per variant an online experiment would need to detect the simulated lift.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from freshrec.config import Settings
from freshrec.engine import Engine
from freshrec.evaluation.data import EvalData
from freshrec.evaluation.replay import load_items, sampled
from freshrec.events import Event
from freshrec.experiments import ExperimentIn
from freshrec.experiments.stats import sample_size_per_variant

EXPERIMENT_ID = "offline-ab"


def experiment_of(strategies: Sequence[str]) -> ExperimentIn:
    """An equal split between ``strategies`` (variants named after them); the first is the baseline."""
    return ExperimentIn.model_validate(
        {
            "variants": [{"name": s, "weight": 1, "strategy": s} for s in strategies],
            "metric_window_seconds": 1,
        }
    )


def simulate(
    data: EvalData,
    settings: Settings,
    experiment: ExperimentIn,
    k: int = 10,
    sample: float = 1.0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay ``data`` through ``experiment`` (fresh state: every event applied as it happens)."""
    started = time.perf_counter()
    engine = Engine(settings)
    load_items(engine, data.items)
    registry = engine.experiments
    engine.apply_record(registry.put_record(EXPERIMENT_ID, experiment, engine.strategies, 0.0))
    declared = registry.get(EXPERIMENT_ID)
    touched: dict[str, set[str]] = defaultdict(set)
    exposures = 0
    for n, event in enumerate(data.events, 1):
        user_touched = touched[event.user_id]
        if data.is_target(event) and event.item_id not in user_touched and sampled(event, sample, seed):
            exposures += 1
            variant = declared.assign(event.user_id)
            options = {"k": k, "exclude": user_touched, **variant.params}
            shown = [r.item_id for r in engine.recommend(event.user_id, variant.strategy, **options)]
            request_id = f"sim-{n}"
            engine.apply_record(
                registry.exposure_record(request_id, declared, variant, event.user_id, shown, event.ts)
            )
            click = Event(
                f"sim-click-{n}", event.user_id, event.item_id, "click", event.ts, request_id=request_id
            )
            registry.on_events([click], engine.catalog.items)
        user_touched.add(event.item_id)
        engine.apply_events(engine.new_events([event]))
        if progress is not None and n % 1000 == 0:
            progress(n)
    results = registry.results(EXPERIMENT_ID)
    baseline = results["variants"][0]["ctr"]["value"]
    for variant in results["variants"][1:]:
        variant["exposures_needed_per_variant"] = sample_size_per_variant(baseline, variant["ctr"]["value"])
    results["k"] = k
    results["targets"] = exposures
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["click_rule"] = "a click when the held-out next item is among the exposure's K items"
    return results
