"""The serving step's flat keys and the CPU accounting of a server's process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from freshrec.bench.runner import headline
from freshrec.bench.serving import USER_STRATEGIES, tree_cpu_seconds


def _serving(p99: float, health: float, per_s: dict[str, float]) -> dict[str, Any]:
    run = {"p50_ms": p99 / 2, "p99_ms": p99, "p999_ms": p99 * 2, "errors": 0}
    return {
        "freshness": {"p50_ms": 1.0, "p99_ms": 3.0},
        "strategies": {s: {"1000": run} for s in USER_STRATEGIES},
        "throughput": {"health": {"per_s": health}},
        "throughput_ratio_vs_empty": {s: per_s[s] / health for s in USER_STRATEGIES},
        "server_cpu": {"cores": 1.5},
        "loadgen_cpu": {"cores": 0.25},
        "workers": 2,
    }


def test_flat_keys_per_strategy_ratios_and_baseline() -> None:
    rates = dict.fromkeys(USER_STRATEGIES, 800.0) | {"hybrid": 200.0}
    after = _serving(1.5, 1000.0, rates)
    before = _serving(6.0, 500.0, dict.fromkeys(USER_STRATEGIES, 100.0))
    out = headline({"serving": after, "serving_baseline": before})
    for strategy in USER_STRATEGIES:
        assert out[f"recs_p99_ms_at_1000rps_{strategy}"] == 1.5
        assert out[f"baseline_recs_p99_ms_at_1000rps_{strategy}"] == 6.0
        assert out[f"after_over_baseline_recs_p99_ms_at_1000rps_{strategy}"] == 0.25
    assert out["serving_ratio_personalized_to_health"] == 0.8
    assert out["serving_ratio_hybrid_to_personalized"] == 0.25
    assert out["baseline_serving_ratio_personalized_to_health"] == 0.2
    assert out["server_cpu_cores"] == 1.5 and out["loadgen_cpu_cores"] == 0.25
    assert out["serving_workers"] == 2 and out["fresh_p99_ms"] == 3.0


BURN = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"


def test_tree_cpu_counts_the_children_of_a_server() -> None:
    """A parent that starts a child burning CPU: the tree's seconds include the child's."""
    script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {BURN!r}])\n"
        "time.sleep(5)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        time.sleep(2.5)  # the child has burnt its 0.6 s of CPU by now, the parent slept
        with open(f"/proc/{parent.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        assert tree_cpu_seconds(parent.pid) >= own + 0.5
    finally:
        parent.kill()
        parent.wait()
