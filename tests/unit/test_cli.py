"""The ``freshrec`` command line (SPEC §6), driven in-process with click's CliRunner.

``serve`` and ``demo`` start servers and are exercised by the end-to-end tests, not here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner, Result

from freshrec.cli import main
from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.storage.datadir import DataDir
from shared_data import DATASQRL as DATASQRL_DATA
from shared_data import needs, path_of

DATASQRL = path_of(DATASQRL_DATA)
CONTENT = DATASQRL / "content.json.gz"
CLICKS = DATASQRL / "clickstream.json.gz"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``FRESHREC_...`` variable of the calling shell, and the root logger as it was before."""
    for name in list(os.environ):
        if name.startswith("FRESHREC_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def open_engine(path: Path) -> tuple[DataDir, Engine]:
    datadir = DataDir(path, load_settings(clock="event"))
    return datadir, datadir.open_engine()


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


# ---------------------------------------------------------------------------------------------------------
# --help


def test_main_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0, result.output
    for name in ("serve", "replay", "import-items", "demo"):
        assert name in result.output


def test_every_command_has_help() -> None:
    assert isinstance(main, click.Group)
    assert {"serve", "replay", "import-items", "demo"} <= set(main.commands)
    for name, command in main.commands.items():
        for flag in ("--help", "-h"):
            result = run(name, flag)
            assert result.exit_code == 0, (name, result.output)
            assert "Usage:" in result.output, name
            assert (command.help or "").split("\n")[0].strip()[:20] in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("serve", ["--host", "--port", "--data-dir", "--config", "--state", "--kafka", "--topic"]),
        ("replay", ["--format", "--rate", "--url", "--data-dir"]),
        ("import-items", ["--format", "--url", "--data-dir"]),
        ("demo", ["--rate", "--users", "--items", "--port"]),
    ],
)
def test_spec_flags_exist(command: str, flags: list[str]) -> None:
    output = run(command, "--help").output
    for flag in flags:
        assert flag in output, (command, flag)


# ---------------------------------------------------------------------------------------------------------
# replay


@needs(DATASQRL_DATA)
def test_replay_of_the_datasqrl_files_into_a_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the replay is checked here; the embeddings in tests/conformance/test_similar_content_datasqrl.py
    monkeypatch.setenv("FRESHREC_EMBEDDINGS__MODEL", "none")
    data = tmp_path / "data"
    result = run("replay", CONTENT, CLICKS, "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "19,855 events" in result.output
    assert "2,596 items" in result.output

    datadir, engine = open_engine(data)
    try:
        assert len(engine.catalog) >= 2_596
        assert engine.applied_events == 19_855
        animation = engine.catalog.get("https://en.wikipedia.org/wiki/Animation")
        assert animation is not None and animation.title == "Animation"
        assert 1_704_153_600.0 <= engine.now() <= 1_704_153_600.0 + 3_600.0  # the event clock
        assert engine.view_rows("item_popularity")
    finally:
        datadir.close(snapshot=False)

    # the same clicks again: stable event ids make a re-replay change nothing
    again = run("replay", CLICKS, "--data-dir", data)
    assert again.exit_code == 0, again.output
    datadir, engine = open_engine(data)
    try:
        assert engine.applied_events == 19_855
    finally:
        datadir.close(snapshot=False)


def test_replay_stops_at_an_invalid_event_and_keeps_earlier_batches(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = [
        {"event_id": f"e{i}", "user_id": "u1", "item_id": f"item-{i}", "type": "view", "timestamp": 1e9 + i}
        for i in range(5)
    ]
    events[3]["type"] = "teleport"
    path = write_jsonl(tmp_path / "events.jsonl", events)
    data = tmp_path / "data"

    result = run("replay", path, "--data-dir", data, "--batch", "2")
    assert result.exit_code != 0
    assert "unknown event type 'teleport'" in result.output
    assert "#1 type" in result.output  # the second event of the rejected batch
    assert "before this batch was stored" in result.output

    datadir, engine = open_engine(data)
    try:
        assert engine.applied_events == 2  # the first batch; none of the rejected one
        assert {row["item_id"] for row in engine.view_rows("user_history")} == {"item-0", "item-1"}
    finally:
        datadir.close(snapshot=False)


def test_replay_of_a_bad_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "a", "type": "view", "timestamp": 1000000000}\n{oops\n')
    result = run("replay", path, "--data-dir", tmp_path / "data")
    assert result.exit_code != 0
    assert "events.jsonl:2" in result.output
    assert "Traceback" not in result.output


def test_url_and_data_dir_together_is_a_usage_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"user_id": "u", "item_id": "a", "type": "view"}])
    for command in ("replay", "import-items"):
        result = run(command, path, "--url", "http://127.0.0.1:9", "--data-dir", tmp_path / "data")
        assert result.exit_code == 2, result.output
        assert "exactly one of --url" in result.output
        result = run(command, path)
        assert result.exit_code == 2, result.output
        assert "exactly one of --url" in result.output
    assert not (tmp_path / "data").exists()


def test_replay_into_a_locked_data_dir_fails_clearly(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"user_id": "u", "item_id": "a", "type": "view"}])
    data = tmp_path / "data"
    holder = DataDir(data, load_settings(clock="event"))
    try:
        result = run("replay", path, "--data-dir", data)
    finally:
        holder.close(snapshot=False)
    assert result.exit_code == 1
    assert "in use by another freshrec process" in result.output


def test_bad_config_file_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "freshrec.toml"
    config.write_text("[views]\ncategory_window_seconds = -5\n")
    path = write_jsonl(tmp_path / "e.jsonl", [{"user_id": "u", "item_id": "a", "type": "view"}])
    result = run("replay", path, "--data-dir", tmp_path / "data", "--config", config)
    assert result.exit_code == 1
    assert "bad configuration" in result.output
    assert "category_window_seconds" in result.output


# ---------------------------------------------------------------------------------------------------------
# import-items


def test_import_items_from_csv_into_a_data_dir(tmp_path: Path) -> None:
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(
        "item_id,title,category,brand,price,in_stock,tags\n"
        "sku-1,Red shoe,shoes,acme,49.9,true,red|leather\n"
        "sku-2,Blue hat,hats,,15,false,\n"
        "sku-3,Green scarf,,globex,,yes,wool\n"
    )
    data = tmp_path / "data"
    result = run("import-items", csv_path, "--data-dir", data, "--batch", "2")
    assert result.exit_code == 0, result.output
    assert "3 items" in result.output

    datadir, engine = open_engine(data)
    try:
        assert len(engine.catalog) == 3
        shoe = engine.catalog.get("sku-1")
        assert shoe is not None
        assert (shoe.title, shoe.category, shoe.brand, shoe.price, shoe.in_stock, shoe.tags) == (
            "Red shoe",
            "shoes",
            "acme",
            49.9,
            True,
            ["red", "leather"],
        )
        hat = engine.catalog.get("sku-2")
        assert hat is not None and hat.in_stock is False and hat.price == 15.0 and hat.brand is None
        scarf = engine.catalog.get("sku-3")
        assert scarf is not None and scarf.category is None and scarf.tags == ["wool"]
        assert engine.applied_events == 0
    finally:
        datadir.close(snapshot=False)


def test_import_items_rejects_a_bad_item_and_keeps_earlier_batches(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "items.jsonl",
        [{"item_id": "a"}, {"item_id": "b"}, {"item_id": "c", "price": -1}, {"item_id": "d"}],
    )
    data = tmp_path / "data"
    result = run("import-items", path, "--data-dir", data, "--batch", "2")
    assert result.exit_code == 1
    assert "price" in result.output
    datadir, engine = open_engine(data)
    try:
        assert sorted(i.item_id for i in engine.catalog.iter_items()) == ["a", "b"]
    finally:
        datadir.close(snapshot=False)


def test_distributed_commands_say_what_is_missing() -> None:
    worker = CliRunner().invoke(main, ["worker"])
    assert worker.exit_code == 2 and "needs --kafka HOST:PORT and --state redis://" in worker.output
    half = CliRunner().invoke(main, ["serve", "--state", "redis://127.0.0.1:1/0"])
    assert half.exit_code == 1 and "needs both --state redis://... and --kafka" in half.output
    odd = CliRunner().invoke(main, ["serve", "--state", "sqlite:///x"])
    assert odd.exit_code == 1 and "not supported; use memory:// or redis://" in odd.output
    unreachable = CliRunner().invoke(main, ["worker", "--state", "redis://127.0.0.1:1/0", "--kafka", "x:1"])
    assert unreachable.exit_code == 1 and "cannot open the state redis://127.0.0.1:1/0" in unreachable.output
