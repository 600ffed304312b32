"""The shipped sample data sets (tests/fixtures, made up for the project) in the outside data sets' formats.

They keep the DataSQRL and RecBole readers, the file replay and the co-visit view tested on a fresh clone;
the same checks on the real data sets are in test_files_and_replay.py, test_movielens.py and the DataSQRL
conformance tests (which skip without ``../shared/data``).
"""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

import shared_data
from freshrec.api import create_app
from freshrec.cli import main
from freshrec.config import load_settings
from freshrec.datasets.files import detect_format, read_records
from freshrec.datasets.movielens import load_movielens
from freshrec.engine import Engine
from freshrec.events import parse_rfc3339
from freshrec.storage.datadir import DataDir
from shared_data import FIXTURES

DATASQRL = FIXTURES / "datasqrl-sample"
CONTENT = DATASQRL / "content.json.gz"
CLICKS = DATASQRL / "clickstream.json.gz"
RECBOLE = FIXTURES / "movielens-sample"
TEN_MINUTES = 600.0


def test_the_datasqrl_sample_reads_as_the_real_files_do() -> None:
    assert detect_format(CONTENT) == detect_format(CLICKS) == "datasqrl"
    items = [r for kind, r in read_records(CONTENT) if kind == "item"]
    events = [r for kind, r in read_records(CLICKS) if kind == "event"]
    assert len(items) == 10
    assert len(events) == 41
    assert all(i["item_id"] == i["url"] and i["title"] for i in items)
    assert {e["type"] for e in events} == {"click"}
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert ids == [r["event_id"] for _, r in read_records(CLICKS)]  # stable across reads
    assert {e["item_id"] for e in events} <= {i["item_id"] for i in items}


def test_replay_of_the_datasqrl_sample_into_a_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRESHREC_EMBEDDINGS__MODEL", "none")
    data = tmp_path / "data"
    for _ in range(2):  # the second replay changes nothing: stable event ids
        result = CliRunner().invoke(main, ["replay", str(CONTENT), str(CLICKS), "--data-dir", str(data)])
        assert result.exit_code == 0, result.output
        datadir = DataDir(data, load_settings(clock="event"))
        engine = datadir.open_engine()
        try:
            assert len(engine.catalog) == 10
            assert engine.applied_events == 41
        finally:
            datadir.close(snapshot=False)


def covisits_by_definition(clicks: list[tuple[str, str, float]], url: str) -> Counter[str]:
    """The example's SQL, literally: pairs of one user's clicks, ``b.t < a.t <= b.t + 10 min``."""
    return Counter(
        after
        for user, before, t_before in clicks
        if before == url
        for other, after, t_after in clicks
        if other == user and t_before < t_after <= t_before + TEN_MINUTES
    )


def test_graphql_recommendation_on_the_sample_equals_the_example_sql() -> None:
    engine = Engine(load_settings(clock="event", embeddings={"model": "none"}, cf={"enabled": False}))
    engine.upsert_items([r for _, r in read_records(CONTENT)])
    engine.ingest([r for _, r in read_records(CLICKS)])
    raw = [orjson.loads(line) for line in gzip.decompress(CLICKS.read_bytes()).splitlines()]
    clicks = [(r["userid"], r["url"], parse_rfc3339(r["event_time"])) for r in raw]
    query = "query($u: String!) { Recommendation(url: $u, limit: 100) { recommendation frequency } }"

    async def answers() -> dict[str, Counter[str]]:
        transport = httpx.ASGITransport(app=create_app(engine))
        out: dict[str, Counter[str]] = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            for url in sorted({c[1] for c in clicks}):
                body = (await client.post("/graphql", json={"query": query, "variables": {"u": url}})).json()
                out[url] = Counter(
                    {r["recommendation"]: r["frequency"] for r in body["data"]["Recommendation"]}
                )
        return out

    got = asyncio.run(answers())
    assert sum(map(len, got.values())) > 10  # the sample has co-visits to compare
    for url, counts in got.items():
        assert counts == covisits_by_definition(clicks, url), url


def test_the_recbole_sample_reads_as_the_real_files_do() -> None:
    assert detect_format(RECBOLE) == "recbole"
    items, events = load_movielens(RECBOLE)
    assert len(items) == 12
    assert len(events) == 90
    by_id = {i["item_id"]: i for i in items}
    assert by_id["1"]["title"] == "The Late Window (1995)"
    assert by_id["2"]["category"] == "Thriller"
    assert by_id["2"]["tags"] == ["Thriller", "Mystery"]
    times = [e["timestamp"] for e in events]
    assert times == sorted(times)
    assert {e["item_id"] for e in events} <= set(by_id)


def test_a_missing_data_set_skips_with_where_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(shared_data.ROOT_VARIABLE, str(tmp_path))
    monkeypatch.delenv(shared_data.REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"MovieLens 100K.*pip download --no-deps recbole"):
        shared_data.require(shared_data.MOVIELENS_100K)
    with pytest.raises(pytest.skip.Exception, match=r"DataSQRL.*recommendation/yourdata-files"):
        shared_data.require(shared_data.DATASQRL)
    (tmp_path / "datasqrl-clickstream").mkdir()
    for name in shared_data.DATASQRL.files:
        (tmp_path / "datasqrl-clickstream" / name).write_bytes(CLICKS.read_bytes())
    assert shared_data.require(shared_data.DATASQRL) == tmp_path / "datasqrl-clickstream"


def test_ci_fails_instead_of_skipping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(shared_data.ROOT_VARIABLE, str(tmp_path))
    monkeypatch.setenv(shared_data.REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="a missing data set is an error"):
        shared_data.require(shared_data.MOVIELENS_100K)
    ci = (shared_data.PROJECT / ".ci" / "run").read_text()
    assert f"export {shared_data.REQUIRE_VARIABLE}=1" in ci
