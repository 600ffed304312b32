"""Per-variant results of an experiment from its tallies: rates and means with 95% intervals, lifts, p-values.

Computed from counters that are kept up to date per exposure and per event, so answering costs a few
arithmetic operations per variant, whatever the traffic.
"""

from __future__ import annotations

import math
from typing import Any

from freshrec.experiments.attribution import Tally
from freshrec.experiments.model import Experiment
from freshrec.experiments.stats import (
    mean_interval,
    proportion_se,
    ratio_lift,
    sample_variance,
    two_proportion_p,
    welch_p,
    wilson,
)

RATES = {"ctr": "clicked", "add_to_cart_rate": "carted", "conversion_rate": "converted"}


def results(experiment: Experiment, tallies: dict[str, Tally]) -> dict[str, Any]:
    """The ``GET /v1/experiments/{id}/results`` body."""
    names = [v.name for v in experiment.variants]
    names += sorted(set(tallies) - set(names))  # variants since removed keep their results
    baseline = tallies.get(names[0], Tally())
    variants = []
    for name in names:
        tally = tallies.get(name, Tally())
        variant = experiment.variant(name)
        entry: dict[str, Any] = {
            "name": name,
            "strategy": None if variant is None else variant.strategy,
            "weight": None if variant is None else variant.weight,
            "users": len(tally.users),
            "exposures": tally.exposures,
            "clicked_exposures": tally.clicked,
            "clicks": tally.clicks,
            "add_to_carts": tally.add_to_carts,
            "purchases": tally.purchases,
            "revenue": tally.revenue,
        }
        for metric, field in RATES.items():
            entry[metric] = _rate(getattr(tally, field), tally.exposures)
        entry["revenue_per_exposure"] = _mean(tally)
        if name != names[0]:
            entry["lift"] = _lifts(baseline, tally)
        variants.append(entry)
    return {
        "experiment_id": experiment.experiment_id,
        "active": experiment.active,
        "baseline": names[0],
        "metric_window_seconds": experiment.metric_window_seconds,
        "test": "two-sided two-proportion z-test (pooled) for rates, Welch z-test for revenue per exposure",
        "confidence": 0.95,
        "variants": variants,
    }


def _rate(successes: int, trials: int) -> dict[str, float]:
    low, high = wilson(successes, trials)
    return {"value": successes / trials if trials else 0.0, "low": low, "high": high}


def _mean(tally: Tally) -> dict[str, float]:
    mean, low, high = mean_interval(tally.revenue, tally.revenue_sq, tally.exposures)
    return {"value": mean, "low": low, "high": high}


def _lifts(a: Tally, b: Tally) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for metric, field in RATES.items():
        x_a, x_b = getattr(a, field), getattr(b, field)
        rate_a = x_a / a.exposures if a.exposures else 0.0
        rate_b = x_b / b.exposures if b.exposures else 0.0
        lift, low, high = ratio_lift(
            rate_a, proportion_se(x_a, a.exposures), rate_b, proportion_se(x_b, b.exposures)
        )
        p = two_proportion_p(x_a, a.exposures, x_b, b.exposures)
        out[metric] = {"lift": lift, "low": low, "high": high, "p_value": p}
    var_a = sample_variance(a.revenue, a.revenue_sq, a.exposures)
    var_b = sample_variance(b.revenue, b.revenue_sq, b.exposures)
    mean_a = a.revenue / a.exposures if a.exposures else 0.0
    mean_b = b.revenue / b.exposures if b.exposures else 0.0
    lift, low, high = ratio_lift(
        mean_a,
        math.sqrt(var_a / a.exposures) if a.exposures else 0.0,
        mean_b,
        math.sqrt(var_b / b.exposures) if b.exposures else 0.0,
    )
    out["revenue_per_exposure"] = {
        "lift": lift,
        "low": low,
        "high": high,
        "p_value": welch_p(mean_a, var_a, a.exposures, mean_b, var_b, b.exposures),
    }
    return out
