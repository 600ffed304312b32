"""``freshrec import-events`` and ``freshrec export`` on small files written by the tests."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from freshrec.api import create_app
from freshrec.cli import main
from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.storage.datadir import DataDir
from freshrec.warehouse.backfill import Backfill, EngineTarget, Reject
from freshrec.warehouse.read import ColumnMap

T0 = 1_700_000_000


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "freshrec.toml"
    path.write_text('[embeddings]\nmodel = "none"\n')
    return path


def _rows(data_dir: Path, config: Path, view: str) -> list[dict[str, Any]]:
    datadir = DataDir(data_dir, load_settings(config, clock="event"))
    try:
        return datadir.open_engine().view_rows(view)
    finally:
        datadir.close(snapshot=False)


BAD_ROWS: list[dict[str, Any]] = [
    {"uid": "u1", "iid": "a", "kind": "view", "ts": T0},
    {"uid": "u1", "iid": "b", "kind": "like", "ts": T0 + 1},  # unknown type
    {"uid": "", "iid": "c", "kind": "view", "ts": T0 + 2},  # empty user
    {"uid": "u2", "iid": "a", "kind": "purchase", "ts": 4_000_000_000},  # future
    {"uid": "u2", "iid": "b", "kind": "click", "ts": T0 + 3, "price": -1},
    {"uid": "u3", "iid": "c", "kind": "view"},  # no timestamp: now
]
MAPS = ["--map", "user_id=uid", "--map", "item_id=iid", "--map", "type=kind", "--map", "timestamp=ts"]


def _http_problems(record: dict[str, Any]) -> list[dict[str, Any]]:
    """What POST /v1/events answers for one event."""
    import asyncio

    async def post() -> httpx.Response:
        app = create_app(Engine.in_memory(load_settings(embeddings={"model": "none"})))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/v1/events", json=[record])

    response = asyncio.run(post())
    assert response.status_code == 422
    return [{"field": d["field"], "message": d["message"]} for d in response.json()["details"]]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_rejects_are_reported_by_row_with_the_http_messages(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"events.{fmt}"
    if fmt == "parquet":
        columns = ("uid", "iid", "kind", "ts", "price")
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in BAD_ROWS]), path)
    elif fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, ["uid", "iid", "kind", "ts", "price"])
            writer.writeheader()
            writer.writerows(BAD_ROWS)
    else:
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in BAD_ROWS))
    config = _config(tmp_path)
    rejects = tmp_path / "rejects.jsonl"
    result = _cli(
        "import-events", str(path), "--data-dir", str(tmp_path / "d"), "--config", str(config),
        "--rejects", str(rejects), *MAPS,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "2 events accepted (2 new), 4 rejected" in result.output
    assert "4 row(s) were rejected" in result.output
    found = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [r["row"] for r in found] == [2, 3, 4, 5]
    for reject in found:
        raw = BAD_ROWS[reject["row"] - 1]
        record = {"user_id": raw["uid"], "item_id": raw["iid"], "type": raw["kind"], "timestamp": raw["ts"]}
        if "price" in raw:
            record["price"] = raw["price"]
        if fmt == "csv":  # an empty CSV cell is a missing value
            record = {k: v for k, v in record.items() if v != ""}
        assert reject["problems"] == _http_problems(record)
    history = _rows(tmp_path / "d", config, "user_history")
    assert sorted((r["user_id"], r["item_id"]) for r in history) == [("u1", "a"), ("u3", "c")]


def test_reimporting_a_file_changes_nothing_and_live_events_go_on_top(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    rows = [
        {"user_id": f"u{n % 3}", "item_id": f"i{n % 5}", "type": "view", "timestamp": T0 + n}
        for n in range(50)
    ]
    with gzip.open(path, "wb") as fh:
        fh.write(
            b"".join(orjson.dumps(r) + b"\n" for r in rows[:20])
            + b"\n"
            + b"".join(orjson.dumps(r) + b"\n" for r in rows[20:])
        )
    config = _config(tmp_path)
    data = tmp_path / "d"
    first = _cli("import-events", str(path), "--data-dir", str(data), "--config", str(config), "--batch", "7")
    assert "50 events accepted (50 new), 0 rejected" in first.output, first.output
    again = _cli("import-events", str(path), "--data-dir", str(data), "--config", str(config))
    assert "50 events accepted (0 new), 0 rejected" in again.output, again.output
    settings = load_settings(config, clock="event")
    datadir = DataDir(data, settings)
    engine = datadir.open_engine()
    assert engine.applied_events == 50
    engine.ingest([{"user_id": "u0", "item_id": "i9", "type": "purchase", "timestamp": T0 + 100}])
    datadir.close()
    popularity = {r["item_id"]: r["weighted_total"] for r in _rows(data, config, "item_popularity")}
    assert popularity == {"i0": 10.0, "i1": 10.0, "i2": 10.0, "i3": 10.0, "i4": 10.0, "i9": 10.0}


def test_typed_columns_and_constants(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": pa.array([7, 8], pa.int64()),
            "sku": pa.array([1, 2], pa.int32()),
            "at": pa.array([T0 * 1000, T0 * 1000 + 1500], pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "amount": pa.array([pa_decimal("12.50"), pa_decimal("99.99")], pa.decimal128(6, 2)),
            "channel": ["web", None],
        }
    )
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path)
    settings = load_settings(clock="event", embeddings={"model": "none"})
    engine = Engine.in_memory(settings)
    rejects: list[Reject] = []
    columns = ColumnMap.parse(
        ["user_id=uid", "item_id=sku", "timestamp=at", "price=amount"], ["type=purchase"]
    )
    stats = Backfill(settings, EngineTarget(engine), columns, on_reject=rejects.append).run([path])
    assert (stats.accepted, stats.rejected, rejects) == (2, 0, [])
    history = sorted(engine.view_rows("user_history"), key=lambda r: r["timestamp"])
    assert [(r["user_id"], r["item_id"], r["type"], r["timestamp"]) for r in history] == [
        ("7", "1", "purchase", float(T0)),
        ("8", "2", "purchase", T0 + 1.5),
    ]
    tiers = {(r["user_id"], r["price_tier"]) for r in engine.view_rows("user_price_sensitivity")}
    assert tiers == {("7", "budget"), ("8", "mid-range")}


def pa_decimal(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)


def test_naive_timestamps_need_assume_utc(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": ["u"],
            "item_id": ["i"],
            "type": ["view"],
            "timestamp": pa.array([T0], pa.int64()).cast(pa.timestamp("s")),
        }
    )
    path = tmp_path / "naive.parquet"
    pq.write_table(table, path)
    config = _config(tmp_path)
    refused = _cli("import-events", str(path), "--data-dir", str(tmp_path / "a"), "--config", str(config))
    assert refused.exit_code == 1 and "--assume-utc" in refused.output
    taken = _cli(
        "import-events", str(path), "--data-dir", str(tmp_path / "b"), "--config", str(config), "--assume-utc"
    )
    assert taken.exit_code == 0, taken.output
    assert _rows(tmp_path / "b", config, "user_history")[0]["timestamp"] == float(T0)


def test_bad_mapping_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("{}\n")
    result = _cli("import-events", str(path), "--data-dir", str(tmp_path / "d"), "--map", "userid=uid")
    assert result.exit_code == 2 and "'userid' is not an event field" in result.output


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_writes_the_view_rows(tmp_path: Path, fmt: str) -> None:
    config = _config(tmp_path)
    data = tmp_path / "d"
    settings = load_settings(config, clock="event")
    datadir = DataDir(data, settings)
    engine = datadir.open_engine()
    engine.upsert_items([{"item_id": "a", "category": "books", "price": 10.0}])
    engine.ingest(
        [
            {"user_id": "u1", "item_id": "a", "type": "view", "timestamp": T0, "dwell_seconds": 4.0},
            {"user_id": "u2", "item_id": "a", "type": "click", "timestamp": T0 + 5},
        ]
    )
    expected = engine.view_rows("user_category_affinity")
    datadir.close()
    out = tmp_path / f"rows.{fmt}"
    result = _cli(
        "export", "user_category_affinity", "--format", fmt, "-o", str(out), "--data-dir", str(data),
        "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    if fmt == "parquet":
        got = pq.read_table(out).to_pylist()
    elif fmt == "csv":
        with out.open() as fh:
            got = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    else:
        got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    key = lambda r: r["user_id"]  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert len(got) == 2
    one = _cli(
        "export", "user_category_affinity", "--format", fmt, "-o", str(out), "--data-dir", str(data),
        "--config", str(config), "--key", "u2",
    )  # fmt: skip
    assert "wrote 1 rows" in one.output


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value
