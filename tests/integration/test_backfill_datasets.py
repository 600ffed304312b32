"""A Parquet backfill (``freshrec import-events``) of the real data sets equals the JSON replay.

Each data set is read once with the project's loaders, then written twice in a temporary directory: as JSON
lines in freshrec's own field names (fed by ``freshrec replay``) and as Parquet in a warehouse's shape
(other column names, integer ids, typed UTC timestamps, a constant event type left out), imported with
``--map``/``--set``. Both data directories must hold the same rows in every view and give the same
recommendations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from freshrec.cli import main
from freshrec.config import load_settings
from freshrec.datasets.files import read_records
from freshrec.engine import Engine
from freshrec.storage.datadir import DataDir
from shared_data import DATASQRL, MOVIELENS_100K, require

CONFIG = '[embeddings]\nmodel = "none"\n'
BATCH = "1000"


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@contextmanager
def _engine(data_dir: Path, config: Path) -> Iterator[Engine]:
    datadir = DataDir(data_dir, load_settings(config, clock="event"))
    try:
        yield datadir.open_engine()
    finally:
        datadir.close(snapshot=False)


def _canonical(rows: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in rows)


def _compare(replayed: Path, imported: Path, config: Path, users: list[str]) -> None:
    with _engine(replayed, config) as a, _engine(imported, config) as b:
        assert a.applied_events == b.applied_events > 0
        for view in a.views:
            want, got = _canonical(a.view_rows(view)), _canonical(b.view_rows(view))
            assert want == got, f"{view}: {len(want)} rows replayed, {len(got)} imported"
        for strategy in ("hybrid", "personalized", "session", "trending"):
            for user in users:
                want_recs = [(r.item_id, r.score) for r in a.recommend(user, strategy, k=10)]
                assert want_recs == [(r.item_id, r.score) for r in b.recommend(user, strategy, k=10)]


def _backfill_case(
    tmp_path: Path,
    items: list[dict[str, Any]],
    events: list[dict[str, Any]],
    table: pa.Table,
    import_args: list[str],
) -> Callable[[list[str]], None]:
    config = tmp_path / "freshrec.toml"
    config.write_text(CONFIG)
    items_file = _write_jsonl(tmp_path / "items.jsonl", items)
    events_file = _write_jsonl(tmp_path / "events.jsonl", events)
    parquet = tmp_path / "events.parquet"
    pq.write_table(table, parquet, row_group_size=25_000)
    replayed, imported = tmp_path / "replayed", tmp_path / "imported"
    for target in (replayed, imported):
        _run("replay", str(items_file), "--kind", "item", "--data-dir", str(target), "--config", str(config))
    _run("replay", str(events_file), "--data-dir", str(replayed), "--batch", BATCH, "--config", str(config))
    output = _run(
        "import-events", str(parquet), "--data-dir", str(imported), "--batch", BATCH,
        "--config", str(config), *import_args,
    )  # fmt: skip
    assert f"{len(events):,} events accepted ({len(events):,} new), 0 rejected" in output

    def compare(users: list[str]) -> None:
        _compare(replayed, imported, config, users)

    return compare


@pytest.mark.heavy
def test_movielens_parquet_backfill_equals_json_replay(tmp_path: Path) -> None:
    directory = require(MOVIELENS_100K)
    records = list(read_records(directory, "recbole"))
    items = [r for kind, r in records if kind == "item"]
    events = [r for kind, r in records if kind == "event"]
    assert len(events) == 100_000
    # a warehouse table: integer ids, a typed UTC timestamp, the rating as a plain column
    table = pa.table(
        {
            "event_id": [e["event_id"] for e in events],
            "uid": pa.array([int(e["user_id"]) for e in events], pa.int64()),
            "iid": pa.array([int(e["item_id"]) for e in events], pa.int32()),
            "kind": pa.array([e["type"] for e in events]).dictionary_encode(),
            "ts": pa.array([int(e["timestamp"]) for e in events], pa.int64()).cast(pa.timestamp("s", "UTC")),
            "rating": [e["properties"]["rating"] for e in events],
        }
    )
    compare = _backfill_case(
        tmp_path,
        items,
        events,
        table,
        ["--map", "user_id=uid", "--map", "item_id=iid", "--map", "type=kind", "--map", "timestamp=ts"],
    )
    compare(sorted({e["user_id"] for e in events})[:40])


@pytest.mark.heavy
def test_datasqrl_parquet_backfill_equals_json_replay(tmp_path: Path) -> None:
    directory = require(DATASQRL)
    items = [r for _, r in read_records(directory / "content.json.gz", "datasqrl")]
    events = [r for _, r in read_records(directory / "clickstream.json.gz", "datasqrl")]
    # the clickstream as a warehouse holds it: its own column names, no event type column
    table = pa.table(
        {
            "event_id": [e["event_id"] for e in events],
            "userid": [e["user_id"] for e in events],
            "url": [e["item_id"] for e in events],
            "event_time": pa.array([round(e["timestamp"] * 1e6) for e in events], pa.int64()).cast(
                pa.timestamp("us", "UTC")
            ),
        }
    )
    compare = _backfill_case(
        tmp_path,
        items,
        events,
        table,
        [
            "--map",
            "user_id=userid",
            "--map",
            "item_id=url",
            "--map",
            "timestamp=event_time",
            "--set",
            "type=click",
        ],
    )
    compare(sorted({e["user_id"] for e in events})[:40])
