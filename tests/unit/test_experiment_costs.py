"""What experiments cost: distinct users in bounded memory (exact, then a HyperLogLog); grouped exposures."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import orjson

from freshrec.experiments.distinct import EXACT_UP_TO, REGISTERS, UserCount


def test_the_count_is_exact_up_to_the_bound_whatever_the_repeats() -> None:
    users = UserCount()
    for n in range(EXACT_UP_TO):
        users.add(f"user-{n}")
        users.add(f"user-{n // 2}")
    assert len(users) == EXACT_UP_TO
    assert not users.approximate


def test_past_the_bound_the_memory_is_fixed_and_the_error_small() -> None:
    users = UserCount()
    distinct = 60_000
    for n in range(distinct):
        users.add(f"u{n}")
        if n % 3 == 0:
            users.add(f"u{n // 3}")  # repeats change nothing
    assert users.approximate and users.exact is None
    assert users.registers is not None and users.registers.nbytes == REGISTERS
    # the standard error is 1.04 / sqrt(2**14) = 0.81%: 4% is five of them
    assert abs(len(users) - distinct) / distinct < 0.04


def test_a_count_survives_a_snapshot() -> None:
    users = UserCount()
    for n in range(EXACT_UP_TO + 500):
        users.add(str(n))
    again = pickle.loads(pickle.dumps(users))
    assert len(again) == len(users)
    again.add("one more")
    assert again.approximate


def test_concurrent_exposures_are_written_in_groups_each_answer_after_its_own(tmp_path: Path) -> None:
    from freshrec.api.app import Runtime
    from freshrec.config import load_settings
    from freshrec.experiments import ExperimentIn
    from freshrec.experiments.serving import _groups, put, recommend
    from freshrec.storage.datadir import DataDir

    settings = load_settings(embeddings={"model": "none"}, cf={"enabled": False})
    datadir = DataDir(tmp_path / "data", settings)
    runtime = Runtime(datadir.open_engine(), datadir)
    spec = ExperimentIn.model_validate(
        {
            "variants": [
                {"name": "a", "weight": 1, "strategy": "trending"},
                {"name": "b", "weight": 1, "strategy": "trending"},
            ]
        }
    )
    answered: list[int] = []

    async def one(n: int) -> None:
        await recommend(runtime, f"user-{n}", f"req-{n}", "exp", None, k=5)
        # the answer leaves only once its exposure is in the log and applied
        assert f"req-{n}" in runtime.engine.experiments.attribution.live
        answered.append(n)

    async def run() -> None:
        await put(runtime, "exp", spec)
        await asyncio.gather(*(one(n) for n in range(200)))

    asyncio.run(run())
    assert sorted(answered) == list(range(200))
    groups = _groups(runtime).groups
    assert 1 <= groups < 200  # fewer log writes than exposures
    datadir.close()
    logged = [
        orjson.loads(line[9:])
        for segment in sorted((tmp_path / "data" / "log").glob("*.log"))
        for line in segment.read_bytes().splitlines()
    ]
    assert sorted(r["request_id"] for r in logged if r["op"] == "exposure") == sorted(
        f"req-{n}" for n in range(200)
    )
    reopened = DataDir(tmp_path / "data", settings).open_engine()
    rows = reopened.experiments.results("exp")["variants"]
    assert sum(r["exposures"] for r in rows) == 200 and sum(r["users"] for r in rows) == 200
