"""Collaborative filtering: fold-in, item similarity, fallbacks, persistence, and the hybrid blend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from freshrec.cf.model import CFModel
from freshrec.config import load_settings
from freshrec.engine import Engine

T0 = 1_700_000_000.0
A = [f"a{i}" for i in range(20)]  # one taste
B = [f"b{i}" for i in range(20)]  # another; nobody likes both


def _engine(**cf: Any) -> Engine:
    settings = load_settings(
        clock="event",
        embeddings={"model": "none"},
        cf={"factors": 8, "iterations": 20, "regularization": 1.0, "alpha": 2.0, **cf},
    )
    engine = Engine(settings)
    engine.upsert_items(
        [{"item_id": i, "category": "films" if i in A else "music", "price": 10.0} for i in A + B]
    )
    return engine


def _events(user: str, items: list[str], start: float, kind: str = "purchase") -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{user}-{i}-{kind}",
            "user_id": user,
            "item_id": i,
            "type": kind,
            "timestamp": start + n,
        }
        for n, i in enumerate(items)
    ]


def _two_tastes(engine: Engine) -> None:
    """60 users who like A items, 60 who like B items; each touches a different half of their side."""
    rng = np.random.default_rng(3)
    batch: list[dict[str, Any]] = []
    for u in range(120):
        side = A if u < 60 else B
        chosen = [side[int(j)] for j in rng.choice(len(side), size=10, replace=False)]
        batch += _events(f"u{u}", chosen, T0 + u * 100)
    engine.ingest(batch)


def _train(engine: Engine) -> CFModel:
    model = engine.cf.fit(engine.cf.collect(engine.store, engine.applied_events))
    assert model is not None
    return model


def _share(items: list[str], side: list[str]) -> float:
    return sum(i in side for i in items) / len(items)


def test_fold_in_moves_a_user_toward_what_they_just_did() -> None:
    engine = _engine()
    _two_tastes(engine)
    engine.ingest(_events("new", A[:6], T0 + 50_000, "view"))
    model = _train(engine)
    assert "new" in model.user_index
    before = [r.item_id for r in engine.recommend("new", "cf", k=10)]
    assert _share(before, A) >= 0.9

    # no retraining: the next request folds the new purchases in
    engine.ingest(_events("new", B[:8], T0 + 60_000))
    after = [r.item_id for r in engine.recommend("new", "cf", k=10)]
    assert engine.cf.model is model
    assert _share(after, B) >= 0.5
    # B items the user has not touched yet now rank above every A item they have not touched
    untouched_b = [i for i in after if i in B[8:]]
    assert untouched_b, after

    # without fold-in the trained factors answer: still all A
    engine.cf.settings = engine.cf.settings.model_copy(update={"fold_in": False})
    stale = [r.item_id for r in engine.recommend("new", "cf", k=10)]
    assert _share(stale, A) >= 0.9


def test_a_user_unknown_at_training_is_folded_in() -> None:
    engine = _engine()
    _two_tastes(engine)
    _train(engine)
    engine.ingest(_events("late", B[:5], T0 + 90_000))
    assert "late" not in engine.cf.model.user_index  # type: ignore[union-attr]
    recs = engine.recommend("late", "cf", k=10, explain=True)
    assert _share([r.item_id for r in recs], B) == 1.0
    assert all(r.reasons is not None and "cf" in r.reasons for r in recs)
    # the explanation names items the user interacted with
    named = {i for r in recs for i in r.reasons["because_you_interacted_with"]}  # type: ignore[index]
    assert named and named <= set(B[:5])


def test_similar_items_come_from_the_same_taste_and_never_the_item_itself() -> None:
    engine = _engine()
    _two_tastes(engine)
    _train(engine)
    recs = engine.recommend_for_item("a3", "cf", k=10)
    ids = [r.item_id for r in recs]
    assert "a3" not in ids
    assert _share(ids, A) == 1.0
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_filters_apply_to_cf() -> None:
    engine = _engine()
    _two_tastes(engine)
    _train(engine)
    # u0 purchased its items: they never come back; a category filter holds
    bought = engine.purchased_items("u0")
    recs = engine.recommend("u0", "cf", k=30)
    assert not bought & {r.item_id for r in recs}
    assert all(r.item_id in B for r in engine.recommend("u0", "cf", k=5, category="music"))
    excluded = {r.item_id for r in recs[:3]}
    again = engine.recommend("u0", "cf", k=30, exclude=excluded)
    assert not excluded & {r.item_id for r in again}


def test_without_a_model_or_for_a_stranger_cf_falls_back_to_trending() -> None:
    engine = _engine()
    _two_tastes(engine)
    recs = engine.recommend("u1", "cf", k=5, explain=True)  # no model trained yet
    assert recs and all(r.reasons and r.reasons["fallback"] == "trending" for r in recs)
    assert [r.item_id for r in recs] == [r.item_id for r in engine.recommend("u1", "trending", k=5)]
    _train(engine)
    stranger = engine.recommend("nobody", "cf", k=5, explain=True)
    assert stranger and all(r.reasons and r.reasons["fallback"] == "trending" for r in stranger)
    assert engine.recommend_for_item("unknown-item", "cf", k=5) == []


def test_hybrid_blends_cf_in() -> None:
    engine = _engine()
    _two_tastes(engine)
    _train(engine)
    recs = engine.recommend("u0", "hybrid", k=10, explain=True)
    assert any(r.reasons and "cf" in r.reasons for r in recs)
    # cf disabled: hybrid still answers (the weight is skipped)
    off = _engine(enabled=False)
    _two_tastes(off)
    assert "cf" not in off.strategies
    assert off.recommend("u0", "hybrid", k=10)


def test_a_saved_model_loads_to_the_same_answers(tmp_path: Path) -> None:
    engine = _engine()
    _two_tastes(engine)
    engine.cf.attach(tmp_path)
    model = _train(engine)
    assert (tmp_path / "cf-als.npz").exists()
    before = [(r.item_id, r.score) for r in engine.recommend("u7", "cf", k=10)]

    again = _engine()
    _two_tastes(again)
    again.cf.attach(tmp_path)
    assert again.cf.model is not None
    assert again.cf.model.info == model.info
    assert [(r.item_id, r.score) for r in again.recommend("u7", "cf", k=10)] == before


def test_a_damaged_model_file_is_set_aside_and_cf_falls_back(tmp_path: Path) -> None:
    (tmp_path / "cf-als.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"cf-als\.npz"):
        CFModel.load(tmp_path / "cf-als.npz")
    engine = _engine()
    _two_tastes(engine)
    engine.cf.attach(tmp_path)
    assert engine.cf.model is None
    assert "cf-als.npz" in (engine.cf.last_error or "")
    kept = list(tmp_path.glob("cf-als.npz.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"not a model"
    assert engine.recommend("u1", "cf", k=3)  # answered by the fallback
    _train(engine)  # the next training writes a good model
    assert CFModel.load(tmp_path / "cf-als.npz").info.version == 1
