"""The learned ranker of hybrid: a training replay without leakage, swaps, files, fallback, explanations."""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from freshrec.config import Settings, load_settings
from freshrec.demo.scenario import generate_scenario
from freshrec.engine import Engine
from freshrec.events import Event, validate_events
from freshrec.ranker.examples import replay_examples
from freshrec.ranker.model import RankerModel
from freshrec.ranker.service import MODEL_FILE, RankerService
from freshrec.ranker.train import fit
from freshrec.ranking.candidates import SOURCES
from freshrec.ranking.features import FEATURES

START = 1_700_000_000.0
RANKER = {"max_queries": 600, "min_data_in_leaf": 5, "trees": 40, "cf_checkpoints": 2, "warmup": 0.3}


def settings(**ranker: Any) -> Settings:
    return load_settings(
        clock="event",
        embeddings={"model": "none"},
        cf={"retrain_every_seconds": 0, "iterations": 3},
        ranker={**RANKER, **ranker},
    )


@functools.cache
def shop() -> tuple[list[dict[str, Any]], list[Event]]:
    scenario = generate_scenario(n_users=40, n_items=150, seed=3, start=START, duration_seconds=3 * 3600)
    events = validate_events([dict(e) for e in scenario.events], settings().events)
    return scenario.items, events


def engine_with(s: Settings, events: list[Event]) -> Engine:
    items, _ = shop()
    engine = Engine(s)
    engine.upsert_items(items)
    engine.apply_events(engine.new_events(events))
    engine.cf.fit(engine.cf.collect(engine.store, engine.applied_events))
    return engine


@functools.cache
def trained() -> RankerModel:
    items, events = shop()
    service = RankerService(settings().ranker)
    model = service.train(settings(), items, events)
    assert model is not None
    return model


def test_features_of_a_replay_point_do_not_depend_on_later_events() -> None:
    items, events = shop()
    cut = events[len(events) * 2 // 3].ts
    # after the cut, every event is moved to another user and item (same count, same timestamps)
    users = sorted({e.user_id for e in events})
    ids = sorted({i["item_id"] for i in items})
    changed = [
        e
        if e.ts < cut
        else dataclasses.replace(e, user_id=users[(n * 7) % len(users)], item_id=ids[(n * 13) % len(ids)])
        for n, e in enumerate(events)
    ]
    # every in-session point is taken (no sampling), so both replays have the same ones before the cut
    every = settings(max_queries=10_000, returning_share=0.1)
    a = replay_examples(every, items, events)
    b = replay_examples(every, items, changed)
    rows_a = _rows_by_point(a)
    rows_b = _rows_by_point(b)
    before = [p for p, t in zip(a.at, a.times, strict=True) if t < cut and p in rows_b]
    assert len({user for _, user in before}) >= 5
    assert len(before) >= 20
    for point in before:
        np.testing.assert_array_equal(rows_a[point], rows_b[point])
    # the labels do come from the future: they differ after the change
    labels_a = _labels_by_point(a)
    labels_b = _labels_by_point(b)
    assert any(not np.array_equal(labels_a[p], labels_b[p]) for p in before)


def _rows_by_point(ex: Any) -> dict[tuple[int, str], np.ndarray]:
    bounds = np.cumsum([0, *ex.groups])
    return {p: ex.x[bounds[n] : bounds[n + 1]] for n, p in enumerate(ex.at)}


def _labels_by_point(ex: Any) -> dict[tuple[int, str], np.ndarray]:
    bounds = np.cumsum([0, *ex.groups])
    return {p: ex.y[bounds[n] : bounds[n + 1]] for n, p in enumerate(ex.at)}


def test_labels_are_the_next_items_of_the_user() -> None:
    items, events = shop()
    ex = replay_examples(settings(next_items=3), items, events)
    ordered = sorted(events, key=lambda e: e.ts)
    bounds = np.cumsum([0, *ex.groups])
    assert any(ordered[at].user_id != user for at, user in ex.at)  # returning users
    assert any(ordered[at].user_id == user for at, user in ex.at)  # in session
    for n, (point, user) in enumerate(ex.at[:80]):
        before = {e.item_id for e in ordered[:point] if e.user_id == user}
        upcoming: list[str] = []
        for e in ordered[point:]:
            if e.user_id == user and e.item_id not in before and e.item_id not in upcoming:
                upcoming.append(e.item_id)
        y = ex.y[bounds[n] : bounds[n + 1]]
        candidates = ex.item_ids[bounds[n] : bounds[n + 1]]
        if ordered[point].user_id == user and ordered[point].item_id not in before:
            assert ordered[point].item_id == upcoming[0]
        expected = [2 if i == upcoming[0] else 1 if i in upcoming[1:3] else 0 for i in candidates]
        assert y.tolist() == expected
        assert not before & set(candidates)  # what the user already touched is never a candidate


def test_contributions_add_up_to_the_score() -> None:
    model = trained()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    contrib = model.contributions(x)
    assert contrib.shape == (50, len(FEATURES) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict(x), rtol=1e-6, atol=1e-6)


def test_no_model_means_the_hand_set_blend() -> None:
    _, events = shop()
    with_ranker = engine_with(settings(), events)
    without = engine_with(settings(enabled=False), events)
    assert with_ranker.ranker.model is None
    users = sorted({e.user_id for e in events})[:10]
    for user in users:
        a = with_ranker.recommend(user, "hybrid", k=10, explain=True)
        b = without.recommend(user, "hybrid", k=10, explain=True)
        assert [(r.item_id, r.score, r.reasons) for r in a] == [(r.item_id, r.score, r.reasons) for r in b]
        assert all("ranker" not in (r.reasons or {}) for r in a)


def test_a_trained_ranker_answers_and_explains() -> None:
    _, events = shop()
    engine = engine_with(settings(), events)
    engine.ranker.swap(trained())
    users = sorted({e.user_id for e in events})
    answered = 0
    for user in users[:15]:
        recs = engine.recommend(user, "hybrid", k=10, explain=True)
        plain = engine.recommend(user, "hybrid", k=10)
        assert [r.item_id for r in recs] == [r.item_id for r in plain]
        scores = [r.score for r in recs]
        assert scores == sorted(scores, reverse=True)
        for rec in recs:
            reasons = rec.reasons or {}
            if "fallback" in reasons:
                continue
            answered += 1
            assert reasons["ranker"] == trained().info.version
            assert reasons["sources"] and set(reasons["sources"]) <= set(SOURCES)
            assert all(rank >= 1 for rank in reasons["sources"].values())
            assert len(reasons["top_features"]) == 3
            assert set(reasons["top_features"]) <= set(FEATURES)
    assert answered > 50


def test_the_model_file_round_trips_and_a_bad_one_is_moved_aside(tmp_path: Path) -> None:
    model = trained()
    service = RankerService(settings().ranker)
    service.attach(tmp_path)
    service.swap(model)
    assert (tmp_path / MODEL_FILE).exists()
    again = RankerService(settings().ranker)
    again.attach(tmp_path)
    assert again.model is not None
    assert again.model.info == model.info
    x = np.random.default_rng(1).normal(size=(30, len(FEATURES))).astype(np.float32)
    np.testing.assert_array_equal(again.model.predict(x), model.predict(x))
    (tmp_path / MODEL_FILE).write_text("{not json")
    broken = RankerService(settings().ranker)
    broken.attach(tmp_path)
    assert broken.model is None
    assert broken.last_error is not None
    assert not (tmp_path / MODEL_FILE).exists()
    assert list(tmp_path.glob(f"{MODEL_FILE}.unreadable-*"))


def test_a_swap_under_load_serves_one_model_or_the_other() -> None:
    items, events = shop()
    engine = engine_with(settings(), events)
    first = trained()
    second = fit(replay_examples(settings(seed=5, trees=10), items, events), settings(trees=10).ranker, 2)
    assert second is not None
    user = sorted({e.user_id for e in events})[3]
    engine.ranker.swap(first)
    answer_first = [r.item_id for r in engine.recommend(user, "hybrid", k=10)]
    engine.ranker.swap(second)
    answer_second = [r.item_id for r in engine.recommend(user, "hybrid", k=10)]
    assert answer_first != answer_second
    seen: list[list[str]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append([r.item_id for r in engine.recommend(user, "hybrid", k=10)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(200):
        engine.ranker.swap(first if n % 2 == 0 else second)
    stop.set()
    reader.join()
    assert not errors
    assert seen
    assert all(answer in (answer_first, answer_second) for answer in seen)


def test_held_out_metrics_are_reported() -> None:
    metrics = trained().info.metrics
    assert metrics["held_out_queries"] > 0
    for key in ("hr@10", "ndcg@10"):
        assert 0.0 <= metrics[key] <= 1.0
        assert 0.0 <= metrics["best_source_metrics"][key] <= 1.0
    assert metrics["best_source"] in SOURCES
    assert not math.isnan(trained().info.seconds)


def test_cold_users_still_get_trending() -> None:
    _, events = shop()
    engine = engine_with(settings(), events)
    engine.ranker.swap(trained())
    recs = engine.recommend("nobody-yet", "hybrid", k=5, explain=True)
    assert recs
    assert all((r.reasons or {}).get("cold_start") == "trending" for r in recs)
    assert all("top_features" not in (r.reasons or {}) for r in recs)
