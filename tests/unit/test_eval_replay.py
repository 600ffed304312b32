"""The replay evaluation: predict before learn, what stale means, exclusions, determinism, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from freshrec.cli import main
from freshrec.config import load_settings
from freshrec.evaluation.data import EvalData
from freshrec.evaluation.replay import replay
from freshrec.evaluation.runner import eval_settings
from freshrec.events import Event
from shared_data import MOVIELENS_100K, needs, path_of

DAY = 86_400.0
T0 = 20_000 * DAY  # a midnight
SETTINGS = eval_settings(load_settings(embeddings={"model": "none"}), None, 0)
ML100K = path_of(MOVIELENS_100K)


def _event(n: int, user: str, item: str, ts: float, kind: str = "view") -> Event:
    return Event(event_id=f"e{n}", user_id=user, item_id=item, type=kind, ts=ts)


def _data(events: list[Event], items: list[str]) -> EvalData:
    return EvalData(
        "constructed",
        [{"item_id": i, "category": "c"} for i in items],
        sorted(events, key=lambda e: e.ts),
        frozenset({"purchase"}),
    )


def test_a_target_is_predicted_before_it_is_learned() -> None:
    # "z" is touched by nobody before u's purchase: no strategy can know it; "p" becomes popular.
    # 30 untouched fillers sort before both (ties go by item_id), so a top 10 cannot hold everything.
    fillers = [f"f{n:02d}" for n in range(30)]
    events = [_event(n, f"o{n}", "p", T0 + n, "purchase") for n in range(5)]
    events.append(_event(99, "u", "z", T0 + 100, "purchase"))
    data = _data(events, [*fillers, "p", "z"])
    out = replay(data, SETTINGS, ["trending", "personalized", "hybrid"], "fresh")
    assert out.targets == 6
    # the five "p" buyers: the first could not be predicted, the next four were (p is popular by then)
    for name in ("trending", "hybrid"):
        assert out.scores[name]["hr@10"] == pytest.approx(4 / 6), name


def test_stale_answers_from_the_state_of_the_previous_midnight() -> None:
    # today, other users view "a" then "b" within minutes; u then views "a" and buys "b"
    events: list[Event] = []
    n = 0
    for other in range(6):
        events.append(_event(n, f"o{other}", "a", T0 + 3600 + other * 60))
        events.append(_event(n + 1, f"o{other}", "b", T0 + 3630 + other * 60))
        n += 2
    events.append(_event(n, "u", "a", T0 + 7200))
    events.append(_event(n + 1, "u", "b", T0 + 7260, "purchase"))
    data = _data(events, ["a", "b", "c"])
    fresh = replay(data, SETTINGS, ["covisit"], "fresh")
    stale = replay(data, SETTINGS, ["covisit"], "stale")
    assert fresh.targets == stale.targets == 1
    assert fresh.scores["covisit"]["hr@10"] == 1.0
    assert stale.scores["covisit"]["hr@10"] == 0.0  # nothing of today is known before midnight


def test_items_the_user_touched_are_never_recommended_and_repeats_are_not_targets() -> None:
    # v and u view i0..i7 (popular now); i8 is untouched. u then buys i8, then i0 again.
    events = [_event(n, "v", f"i{n}", T0 + n) for n in range(8)]
    events += [_event(10 + n, "u", f"i{n}", T0 + 10 + n) for n in range(8)]
    events.append(_event(40, "u", "i8", T0 + 40, "purchase"))
    events.append(_event(50, "u", "i0", T0 + 50, "purchase"))  # touched before: a repeat, not a target
    out = replay(_data(events, [f"i{n}" for n in range(9)]), SETTINGS, ["trending"], "fresh", k=1)
    assert out.targets == 1
    # the top 1 would be a popular i0..i7 if they were not excluded; excluded, only i8 is left: a hit
    assert out.scores["trending"]["hr@1"] == 1.0


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="nope"):
        replay(_data([_event(0, "u", "a", T0)], ["a"]), SETTINGS, ["nope"], "fresh")


@needs(MOVIELENS_100K)
@pytest.mark.heavy
def test_eval_on_movielens_writes_report_and_json_and_is_deterministic(tmp_path: Path) -> None:
    args = [
        "eval",
        "--dataset",
        "movielens",
        "--path",
        str(ML100K),
        "--sample",
        "0.01",
        "--strategies",
        "trending,personalized,cf",
        "--seed",
        "3",
        "--workers",
        "3",
        # weekly retrains (31 instead of 212 per mode): the report is what is checked, not daily freshness
        "--refresh",
        "604800",
    ]
    env = {"FRESHREC_EMBEDDINGS__MODEL": "none"}
    runner = CliRunner()
    first = runner.invoke(
        main, [*args, "--json", str(tmp_path / "a.json"), "--report", str(tmp_path / "r.md")], env=env
    )
    assert first.exit_code == 0, first.output
    result: dict[str, Any] = json.loads((tmp_path / "a.json").read_text())
    assert result["dataset"].startswith("movielens")
    assert set(result["replay"]) == {"trending", "personalized", "cf"}
    for modes in result["replay"].values():
        assert set(modes) == {"fresh", "stale"}
        for scores in modes.values():
            assert set(scores) == {"hr@10", "ndcg@10", "mrr", "coverage"}
            assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert set(result["ms_protocol"]["cf"]) == {"precision@10", "recall@10", "ndcg@10", "map"}
    # cf learns something real: well above the popularity baseline in the MS protocol
    assert result["ms_protocol"]["cf"]["ndcg@10"] > result["ms_protocol"]["trending"]["ndcg@10"] + 0.1
    assert result["meta"]["targets"]["fresh"] == result["meta"]["targets"]["stale"] > 300
    report = (tmp_path / "r.md").read_text()
    assert "| cf |" in report and "BiVAE" in report and "![fresh vs stale](r.png)" in report
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = runner.invoke(main, [*args, "--json", str(tmp_path / "b.json")], env=env)
    assert again.exit_code == 0, again.output
    repeated = json.loads((tmp_path / "b.json").read_text())
    assert repeated["replay"] == result["replay"]
    assert repeated["ms_protocol"] == result["ms_protocol"]


@needs(MOVIELENS_100K)
def test_eval_input_errors_are_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    out = runner.invoke(main, ["eval", "--dataset", "movielens", "--path", str(empty)])
    assert out.exit_code != 0 and "no ratings file" in out.output
    out = runner.invoke(main, ["eval", "--dataset", "movielens", "--path", str(ML100K), "--modes", "warm"])
    assert out.exit_code != 0 and "fresh and/or stale" in out.output


def test_stale_exclusions_separate_forgotten_purchases_from_stale_scores() -> None:
    # everything happens today: the stale state knows nothing, not even what u touched
    events = [_event(10 + n, "u", f"i{n}", T0 + 10 + n) for n in range(8)]
    events.append(_event(40, "u", "i8", T0 + 40, "purchase"))
    data = _data(events, [f"i{n}" for n in range(9)])
    state = replay(data, SETTINGS, ["trending"], "stale", k=1)
    everything = replay(data, SETTINGS, ["trending"], "stale", k=1, stale_exclusions="all")
    assert state.scores["trending"]["hr@1"] == 0.0  # i0 comes first (ties by id) and is not known as seen
    assert everything.scores["trending"]["hr@1"] == 1.0  # only i8 is left


def test_returning_users_are_the_ones_the_last_refresh_knew() -> None:
    # day 0: "old" buys a; day 1: "old" and "new" buy b, then "new" buys c; 30 fillers sort before a, b, c
    fillers = [f"f{n:02d}" for n in range(30)]
    events = [
        _event(0, "old", "xa", T0 + 100, "purchase"),
        _event(1, "old", "xb", T0 + DAY + 100, "purchase"),
        _event(2, "new", "xb", T0 + DAY + 200, "purchase"),
        _event(3, "new", "xc", T0 + DAY + 300, "purchase"),
    ]
    data = _data(events, [*fillers, "xa", "xb", "xc"])
    outcomes = {mode: replay(data, SETTINGS, ["trending"], mode) for mode in ("fresh", "stale")}
    for mode, out in outcomes.items():
        assert out.targets == 4
        assert out.returning_targets == 1, mode  # only old's day-1 purchase: new was unknown at midnight
        assert out.returning["trending"]["hr@10"] == 0.0  # xb had no buyer yet when old bought it
    # new buys xb right after old did: fresh trending has it; stale, frozen at midnight, does not
    assert outcomes["fresh"].scores["trending"]["hr@10"] == pytest.approx(1 / 4)
    assert outcomes["stale"].scores["trending"]["hr@10"] == 0.0
