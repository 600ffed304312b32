"""``freshrec demo`` as a new user sees it, with its output going to a file (not a terminal)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import FRESHREC, free_port

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def output() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHREC_")}
    env["COLUMNS"] = "140"
    args = ["demo", "--users", "30", "--items", "120", "--rate", "2000", "--duration", "6"]
    result = subprocess.run(
        [str(FRESHREC), *args, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_no_http_request_log_lines(output: str) -> None:
    assert "HTTP Request" not in output
    assert "INFO" not in output


def test_the_summary_starts_on_its_own_line(output: str) -> None:
    assert re.search(r"^done: [\d,]+ events in", output, re.M), output[-2000:]
    assert not re.search(r"ms[ \t]*done:", output)


def test_no_recommendation_shows_a_zero_score(output: str) -> None:
    rows = [line for line in output.splitlines() if re.match(r"│\s*\d+\s*│", line)]
    assert rows, output[-3000:]
    assert not any(re.search(r"│\s*0\.000\s*│", row) for row in rows)


def test_the_focus_story_is_worded_plainly(output: str) -> None:
    story = output[output.index("done:") :]
    assert "to best #" not in story
    assert re.search(r"its best item (ranked #\d+|was outside the top \d+) at first", story), story
