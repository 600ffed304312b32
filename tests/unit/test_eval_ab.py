"""``freshrec eval --ab``: the offline A/B simulation counts exactly the replay's hits, split by variant."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from freshrec.cli import main
from freshrec.config import load_settings
from freshrec.evaluation.ab import experiment_of, simulate
from freshrec.evaluation.data import load
from freshrec.evaluation.replay import replay
from freshrec.evaluation.runner import eval_settings
from freshrec.experiments import ExperimentIn

SAMPLE = Path(__file__).parents[1] / "fixtures" / "movielens-sample"
SETTINGS = eval_settings(load_settings(embeddings={"model": "none"}, cf={"enabled": False}), None, 0)


def test_two_variants_of_one_strategy_click_exactly_at_its_replay_hit_rate() -> None:
    data = load("movielens", SAMPLE, SETTINGS)
    twins = ExperimentIn.model_validate(
        {
            "variants": [
                {"name": "a", "weight": 1, "strategy": "personalized"},
                {"name": "b", "weight": 1, "strategy": "personalized"},
            ],
            "metric_window_seconds": 1,
        }
    )
    result = simulate(data, SETTINGS, twins, k=10)
    reference = replay(data, SETTINGS, ["personalized"], "fresh", k=10)
    a, b = result["variants"]
    assert a["exposures"] + b["exposures"] == reference.targets == result["targets"] >= 20
    hits = a["clicked_exposures"] + b["clicked_exposures"]
    assert hits / reference.targets == reference.scores["personalized"]["hr@10"]
    # each target's user is in the variant the documented hash gives
    users_a = {e.user_id for e in data.events if _point(e.user_id) < 0.5}
    assert a["users"] <= len(users_a)


def _point(user: str) -> float:
    return int.from_bytes(hashlib.sha256(f"offline-ab\x1f{user}".encode()).digest()[:8], "big") / 2**64


def test_the_command_prints_and_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    env = {"FRESHREC_EMBEDDINGS__MODEL": "none", "FRESHREC_CF__ENABLED": "false", "COLUMNS": "160"}
    args = ["eval", "--dataset", "movielens", "--path", str(SAMPLE), "--ab", "trending,personalized"]
    run = CliRunner().invoke(main, [*args, "--json", str(out)], env=env)
    assert run.exit_code == 0, run.output
    assert "offline A/B" in run.output and "personalized" in run.output
    written = json.loads(out.read_text())
    assert [v["name"] for v in written["variants"]] == ["trending", "personalized"]
    again = simulate(
        load("movielens", SAMPLE, SETTINGS), SETTINGS, experiment_of(["trending", "personalized"])
    )
    assert written["variants"] == again["variants"]  # the command runs the same simulation
    bad = CliRunner().invoke(main, [*args[:-1], "hybrid"], env=env)
    assert bad.exit_code != 0 and "at least two" in bad.output
