"""Experiments in one engine: assignment, attribution, statistics, persistence in the data directory."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import chi2_contingency

from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.experiments import ExperimentIn
from freshrec.experiments.stats import two_proportion_p, wilson
from freshrec.storage.datadir import DataDir

T0 = 1_700_000_000.0
SPEC: dict[str, Any] = {
    "variants": [
        {"name": "control", "weight": 70, "strategy": "trending"},
        {"name": "fresh", "weight": 30, "strategy": "personalized"},
    ],
    "metric_window_seconds": 600,
}


def engine_with(settings_dir: Path | None = None) -> tuple[Engine, DataDir | None]:
    settings = load_settings(clock="event", embeddings={"model": "none"}, cf={"enabled": False})
    if settings_dir is None:
        return Engine(settings), None
    datadir = DataDir(settings_dir, settings)
    return datadir.open_engine(), datadir


def journal(engine: Engine, datadir: DataDir | None, record: dict[str, Any]) -> None:
    if datadir is not None:
        datadir.append([record])
    engine.apply_record(record)


def declare(engine: Engine, datadir: DataDir | None = None, spec: dict[str, Any] = SPEC) -> None:
    record = engine.experiments.put_record("exp", ExperimentIn.model_validate(spec), engine.strategies, T0)
    journal(engine, datadir, record)


def expose(
    engine: Engine,
    request_id: str,
    user: str,
    items: list[str],
    at: float,
    variant: str = "fresh",
    datadir: DataDir | None = None,
) -> None:
    experiment = engine.experiments.get("exp")
    chosen = experiment.variant(variant)
    assert chosen is not None
    journal(
        engine, datadir, engine.experiments.exposure_record(request_id, experiment, chosen, user, items, at)
    )


def event(user: str, item: str, kind: str, ts: float, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "type": kind, "timestamp": ts, **extra}


def variant_row(engine: Engine, name: str) -> dict[str, Any]:
    rows = engine.experiments.results("exp")["variants"]
    found: dict[str, Any] = next(r for r in rows if r["name"] == name)
    return found


def test_assignment_is_the_hash_of_experiment_and_user_against_the_weights() -> None:
    engine, _ = engine_with()
    declare(engine)
    experiment = engine.experiments.get("exp")
    users = [f"user-{i}" for i in range(20_000)]
    assigned = [experiment.assign(u).name for u in users]
    for user, name in zip(users[:500], assigned[:500], strict=True):
        point = int.from_bytes(hashlib.sha256(f"exp\x1f{user}".encode()).digest()[:8], "big") / 2**64
        assert name == ("control" if point < 0.7 else "fresh")
    share = assigned.count("control") / len(users)
    assert 0.69 < share < 0.71
    assert [experiment.assign(u).name for u in users] == assigned


def test_a_click_credits_the_exposure_named_by_its_request_id_once_per_item() -> None:
    engine, _ = engine_with()
    engine.upsert_items([{"item_id": i, "category": "c", "price": 10.0} for i in "abcd"])
    declare(engine)
    expose(engine, "r1", "u1", ["a", "b"], T0 + 1)
    expose(engine, "r2", "u1", ["a", "c"], T0 + 2)
    engine.ingest(
        [
            event("u1", "a", "click", T0 + 3, request_id="r1"),  # the older answer, named
            event("u1", "a", "click", T0 + 4, request_id="r1"),  # the same item again: once
            event("u1", "b", "click", T0 + 5, request_id="r1"),
            event("u1", "d", "click", T0 + 6, request_id="r2"),  # not shown in r2
            event("u2", "a", "click", T0 + 7, request_id="r2"),  # another user's answer
        ]
    )
    fresh = variant_row(engine, "fresh")
    assert (fresh["exposures"], fresh["clicked_exposures"], fresh["clicks"]) == (2, 1, 2)
    assert fresh["ctr"]["value"] == 0.5


def test_without_a_request_id_the_latest_exposure_showing_the_item_inside_its_window_is_credited() -> None:
    engine, _ = engine_with()
    engine.upsert_items([{"item_id": i, "category": "c", "price": 10.0} for i in "abc"])
    declare(engine)
    expose(engine, "r1", "u1", ["a", "b"], T0 + 10, variant="control")
    expose(engine, "r2", "u1", ["a"], T0 + 20, variant="fresh")
    engine.ingest([event("u1", "a", "click", T0 + 30)])  # r2 is the latest showing a
    engine.ingest([event("u1", "b", "click", T0 + 40)])  # only r1 shows b
    engine.ingest([event("u1", "a", "click", T0 + 5)])  # before both answers: nothing
    engine.ingest([event("u1", "b", "add_to_cart", T0 + 10 + 601)])  # past r1's window: nothing
    engine.ingest([event("u1", "c", "click", T0 + 50)])  # never shown
    control, fresh = variant_row(engine, "control"), variant_row(engine, "fresh")
    assert (control["clicks"], control["add_to_carts"], fresh["clicks"]) == (1, 0, 1)


def test_purchases_add_the_price_once_per_exposure_and_item() -> None:
    engine, _ = engine_with()
    engine.upsert_items([{"item_id": "a", "price": 30.0}, {"item_id": "b", "price": 5.0}])
    declare(engine)
    expose(engine, "r1", "u1", ["a", "b"], T0)
    expose(engine, "r2", "u2", ["a"], T0)
    engine.ingest(
        [
            event("u1", "a", "purchase", T0 + 1),
            event("u1", "a", "purchase", T0 + 2),  # counted once
            event("u1", "b", "purchase", T0 + 3, price=7.5),  # the event's price wins
        ]
    )
    fresh = variant_row(engine, "fresh")
    assert (fresh["purchases"], fresh["revenue"]) == (2, 37.5)
    assert fresh["conversion_rate"]["value"] == 0.5
    # per-exposure revenue is 37.5 and 0: mean 18.75, sample sd 26.52
    half = 1.959964 * math.sqrt(((37.5 - 18.75) ** 2 + 18.75**2) / 1) / math.sqrt(2)
    assert fresh["revenue_per_exposure"]["value"] == 18.75
    assert fresh["revenue_per_exposure"]["high"] == pytest.approx(18.75 + half, rel=1e-5)


def test_the_two_proportion_test_is_the_chi_square_test_of_the_two_by_two_table() -> None:
    for x_a, n_a, x_b, n_b in [(10, 100, 20, 100), (3, 1000, 9, 1100), (50, 60, 20, 70)]:
        table = [[x_a, n_a - x_a], [x_b, n_b - x_b]]
        expected = chi2_contingency(table, correction=False).pvalue
        assert two_proportion_p(x_a, n_a, x_b, n_b) == pytest.approx(expected, rel=1e-9)
    low, high = wilson(0, 50)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.07 < high < 0.072  # 3.84 / (50 + 3.84)


def test_results_and_live_exposures_survive_a_restart_with_and_without_a_snapshot(tmp_path: Path) -> None:
    engine, datadir = engine_with(tmp_path / "data")
    assert datadir is not None
    engine.upsert_items([{"item_id": i, "category": "c", "price": 2.0} for i in "ab"])
    declare(engine, datadir)
    expose(engine, "r1", "u1", ["a", "b"], T0, datadir=datadir)
    engine.ingest([event("u1", "a", "click", T0 + 1)])
    before = engine.experiments.results("exp")
    datadir.close(snapshot=False)  # as after kill -9: everything comes from the log

    engine, datadir = engine_with(tmp_path / "data")
    assert datadir is not None
    assert engine.experiments.results("exp") == before
    datadir.snapshot()
    datadir.close()

    engine, datadir = engine_with(tmp_path / "data")
    assert datadir is not None
    assert engine.experiments.results("exp") == before
    # the exposure is still live after the restart: a later click on its other item is credited
    engine.ingest([event("u1", "b", "click", T0 + 2)])
    assert variant_row(engine, "fresh")["clicks"] == 2
    datadir.close()


def test_experiments_of_the_settings_file_are_declared_once_and_an_ended_one_stays_ended(
    tmp_path: Path,
) -> None:
    import asyncio

    from freshrec.api.app import Runtime
    from freshrec.experiments.serving import declare_configured, end

    def start(spec: dict[str, Any]) -> tuple[Runtime, list[str]]:
        settings = load_settings(
            embeddings={"model": "none"}, cf={"enabled": False}, experiments={"exp": spec}
        )
        datadir = DataDir(tmp_path / "data", settings)
        runtime = Runtime(datadir.open_engine(), datadir)
        return runtime, asyncio.run(declare_configured(runtime))

    runtime, declared = start(SPEC)
    assert declared == ["exp"] and runtime.engine.experiments.get("exp").variants[1].weight == 30
    assert runtime.datadir is not None
    runtime.datadir.close()
    runtime, declared = start(SPEC)
    assert declared == []  # unchanged: nothing journaled again
    asyncio.run(end(runtime, "exp"))
    assert runtime.datadir is not None
    runtime.datadir.close()
    changed = {**SPEC, "metric_window_seconds": 60}
    runtime, declared = start(changed)
    assert declared == [] and not runtime.engine.experiments.get("exp").active
    assert runtime.datadir is not None
    runtime.datadir.close()
    with pytest.raises(ValueError, match="experiment 'bad'"):
        load_settings(experiments={"bad": {"variants": [{"name": "a", "weight": 1, "strategy": "x"}]}})
