"""Readers of event and item files (:mod:`freshrec.datasets.files`) and the replay helpers."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from freshrec.datasets.files import BadFile, Kind, detect_format, read_records
from freshrec.replay import Pacer, batched
from shared_data import DATASQRL as DATASQRL_DATA
from shared_data import needs, path_of

DATASQRL = path_of(DATASQRL_DATA)
CONTENT = DATASQRL / "content.json.gz"
CLICKS = DATASQRL / "clickstream.json.gz"


@needs(DATASQRL_DATA)
def test_the_reference_data_is_where_the_tests_expect_it() -> None:
    assert DATASQRL.is_dir(), DATASQRL
    assert CONTENT.is_file()
    assert CLICKS.is_file()


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


# ---------------------------------------------------------------------------------------------------------
# JSON lines


def test_jsonl_events_and_items_are_told_apart_by_their_fields(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"item_id": "a", "title": "A", "price": 3.5},
        {"user_id": "u1", "item_id": "a", "type": "view", "timestamp": 1_700_000_000},
        {"user_id": "u1", "item_id": "b", "type": "purchase", "properties": {"x": [1, 2]}},
        {"item_id": "b", "user_id": "owner"},  # no type: an item record with an extra field
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    # blank lines are skipped
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\n", 1))
    got = list(read_records(path))
    assert got == [("item", records[0]), ("event", records[1]), ("event", records[2]), ("item", records[3])]
    assert detect_format(path) == "jsonl"


def test_kind_can_be_forced(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [{"item_id": "a", "user_id": "x", "type": "view"}])
    assert [k for k, _ in read_records(path, kind="item")] == ["item"]
    assert [k for k, _ in read_records(path, "jsonl", kind="event")] == ["event"]


def test_invalid_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user_id": "u1", "item_id": "a", "type": "view"}\n'
        '{"user_id": "u1", "item_id": "b", "type": "view"}\n'
        '{"user_id": "u1", "item_id": \n'
    )
    reader = read_records(path)
    first = next(reader)
    assert first[1]["item_id"] == "a"
    with pytest.raises(BadFile, match=rf"{path.name}:3: not valid JSON"):
        list(reader)


def test_a_json_line_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"item_id": "a"}\n[1, 2]\n')
    with pytest.raises(BadFile, match=rf"{path.name}:2: expected a JSON object"):
        list(read_records(path))


def test_unreadable_first_line_asks_for_a_format(tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text("not json at all\n")
    with pytest.raises(BadFile, match="--format"):
        list(read_records(path))


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match="no such file"):
        list(read_records(tmp_path / "nope.jsonl"))
    path = write_jsonl(tmp_path / "a.jsonl", [{"item_id": "a"}])
    with pytest.raises(BadFile, match="unknown format 'xml'"):
        list(read_records(path, "xml"))


# ---------------------------------------------------------------------------------------------------------
# CSV

ITEMS_CSV = (
    "item_id,title,category,price,in_stock,tags,brand\n"
    "a,Alpha,books,12.5,true,red|blue||green,acme\n"
    "b,Beta,music,100,FALSE,,\n"
    'c,"Gamma, the third",books,0,yes,solo,\n'
    "d,Delta,,,no,x|y,globex\n"
)


def test_csv_items_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(ITEMS_CSV)
    got = list(read_records(path))
    assert [k for k, _ in got] == ["item"] * 4
    a, b, c, d = (r for _, r in got)
    assert a == {
        "item_id": "a",
        "title": "Alpha",
        "category": "books",
        "price": 12.5,
        "in_stock": True,
        "tags": ["red", "blue", "green"],
        "brand": "acme",
    }
    assert b == {"item_id": "b", "title": "Beta", "category": "music", "price": 100.0, "in_stock": False}
    assert isinstance(b["price"], float)
    assert c["title"] == "Gamma, the third"
    assert c["price"] == 0.0 and c["in_stock"] is True and c["tags"] == ["solo"]
    assert d == {"item_id": "d", "title": "Delta", "in_stock": False, "tags": ["x", "y"], "brand": "globex"}


def test_csv_events_with_numeric_and_rfc3339_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,type,timestamp,dwell_seconds,price\n"
        "u1,a,view,1700000000,12.5,3\n"
        "u1,b,click,1700000000.25,,\n"
        "u2,a,purchase,2024-01-02T00:00:00Z,,\n"
    )
    got = list(read_records(path))
    assert [k for k, _ in got] == ["event"] * 3
    first, second, third = (r for _, r in got)
    assert first == {
        "user_id": "u1",
        "item_id": "a",
        "type": "view",
        "timestamp": 1_700_000_000.0,
        "dwell_seconds": 12.5,
        "price": 3.0,
    }
    assert isinstance(first["timestamp"], float)
    assert second["timestamp"] == 1_700_000_000.25
    assert third["timestamp"] == "2024-01-02T00:00:00Z"  # validated later, as any event's
    assert detect_format(path) == "csv"


def test_csv_bad_bool_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,in_stock\na,true\nb,maybe\n")
    with pytest.raises(BadFile, match=rf"{path.name}:3: column 'in_stock' has 'maybe'"):
        list(read_records(path))


def test_csv_error_line_is_the_physical_line_after_multiline_fields(tmp_path: Path) -> None:
    """Quoted fields may span lines (item texts do); the message names the line an editor shows."""
    path = tmp_path / "items.csv"
    path.write_text('item_id,text,in_stock\na,"line one\nline two\nline three",true\nb,plain,maybe\n')
    first = next(read_records(path))
    assert first[1]["text"] == "line one\nline two\nline three"
    with pytest.raises(BadFile, match=rf"{path.name}:5: column 'in_stock'"):
        list(read_records(path))


def test_csv_bad_number_is_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,price\na,cheap\n")
    with pytest.raises(BadFile, match=rf"{path.name}:2: column 'price'"):
        list(read_records(path))


# ---------------------------------------------------------------------------------------------------------
# gzip


def test_gzipped_jsonl_and_csv(tmp_path: Path) -> None:
    records = [
        {"user_id": "u1", "item_id": "a", "type": "view", "timestamp": 1.0},
        {"item_id": "a", "title": "Ä"},
    ]
    jsonl = tmp_path / "records.jsonl.gz"
    with gzip.open(jsonl, "wb") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert list(read_records(jsonl)) == [("event", records[0]), ("item", records[1])]

    csv_path = tmp_path / "items.csv.gz"
    with gzip.open(csv_path, "wt", encoding="utf-8") as fh:
        fh.write(ITEMS_CSV)
    assert detect_format(csv_path) == "csv"
    plain = tmp_path / "items.csv"
    plain.write_text(ITEMS_CSV)
    assert list(read_records(csv_path)) == list(read_records(plain))


# ---------------------------------------------------------------------------------------------------------
# DataSQRL clickstream example (the real files)


@functools.cache
def datasqrl(path: Path) -> list[tuple[Kind, dict[str, Any]]]:
    return list(read_records(path))


@needs(DATASQRL_DATA)
def test_datasqrl_files_are_detected() -> None:
    assert detect_format(CONTENT) == "datasqrl"
    assert detect_format(CLICKS) == "datasqrl"


@needs(DATASQRL_DATA)
def test_datasqrl_content_lines_become_items() -> None:
    records = datasqrl(CONTENT)
    assert len(records) == 2_596
    assert {k for k, _ in records} == {"item"}
    items = [r for _, r in records]
    assert len({i["item_id"] for i in items}) == 2_596
    first = items[0]
    assert first["item_id"] == first["url"] == "https://en.wikipedia.org/wiki/Animation"
    assert first["title"] == "Animation"
    assert first["text"].startswith("Animation is a method")
    assert first["properties"] == {"source_id": "593"}
    assert all(i["item_id"].startswith("https://") and i["title"] for i in items)


@needs(DATASQRL_DATA)
def test_datasqrl_click_lines_become_click_events_with_stable_ids() -> None:
    records = datasqrl(CLICKS)
    assert len(records) == 19_855
    assert {k for k, _ in records} == {"event"}
    events = [r for _, r in records]
    assert {e["type"] for e in events} == {"click"}
    assert events[0] == {
        "event_id": events[0]["event_id"],
        "user_id": "43db0c1f-58ce-72e2-e86f-9e9241b718cd",
        "item_id": "https://en.wikipedia.org/wiki/Lock%27s%20Quest",
        "type": "click",
        "timestamp": 1_704_153_600.0,  # 2024-01-02T00:00:00Z
    }
    assert len({e["user_id"] for e in events}) == 600
    assert len({e["item_id"] for e in events}) == 2_444
    assert all(1_704_153_600.0 <= e["timestamp"] <= 1_704_153_600.0 + 3_600.0 for e in events)
    # every event has an id, distinct even for repeated clicks, and the same when the file is read again
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    again = [r["event_id"] for _, r in read_records(CLICKS)]
    assert again == ids
    # clicked pages are pages of the content file
    pages = {r["item_id"] for _, r in datasqrl(CONTENT)}
    assert {e["item_id"] for e in events} <= pages


def test_datasqrl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "clicks.json"
    path.write_text(
        '{"userid": "u", "url": "https://x", "event_time": "2024-01-02T00:00:00Z"}\n'
        '{"userid": "u", "url": "https://y", "event_time": "yesterday"}\n'
    )
    assert detect_format(path) == "datasqrl"
    with pytest.raises(BadFile, match=rf"{path.name}:2: not a DataSQRL"):
        list(read_records(path))


# ---------------------------------------------------------------------------------------------------------
# batched and Pacer


def test_batched_keeps_order_and_splits_kinds_and_size() -> None:
    kinds: list[Kind] = ["item", "item", "item", "event", "event", "event", "event", "event", "item", "event"]
    records = [(kind, {"n": n}) for n, kind in enumerate(kinds)]
    batches = list(batched(records, 2))
    assert [(k, [r["n"] for r in b]) for k, b in batches] == [
        ("item", [0, 1]),
        ("item", [2]),
        ("event", [3, 4]),
        ("event", [5, 6]),
        ("event", [7]),
        ("item", [8]),
        ("event", [9]),
    ]
    flattened = [(k, r) for k, b in batches for r in b]
    assert flattened == records
    assert list(batched([], 10)) == []
    assert [len(b) for _, b in batched(records[3:8], 1000)] == [5]


def test_pacer_without_rate_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr("freshrec.replay.time.sleep", no_sleep)
    for rate in (None, 0.0):
        pacer = Pacer(rate)
        for _ in range(100):
            pacer.wait(10_000)
        assert pacer.sent == 1_000_000


def test_pacer_with_rate_sleeps_to_keep_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("freshrec.replay.time.sleep", slept.append)
    pacer = Pacer(100.0)
    pacer.wait(50)  # half a second's worth, sent at once
    assert len(slept) == 1
    assert 0.3 < slept[0] <= 0.5
