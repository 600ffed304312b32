"""An experiment through a real ``freshrec serve``: the split, stable variants, DuckDB's results, kill -9.

The reference computation reads the server's durable log (exposures, events and items in the order it
holds them) and applies the attribution rules of docs/experiments.md in SQL: an event of a counted type
credits the exposure its ``request_id`` names, or else the user's latest exposure showing the item, when the
exposure was logged before the event and the event's time is inside the exposure's window; each
(exposure, item, type) counts once.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from support.experiment_sql import duckdb_results, write_tables

if TYPE_CHECKING:
    from conftest import Server, StartServer

pytestmark = pytest.mark.heavy

USERS = 2_000
WINDOW = 1800.0
EXPERIMENT = {
    "variants": [
        {"name": "control", "weight": 50, "strategy": "trending"},
        {"name": "fresh", "weight": 50, "strategy": "hybrid"},
    ],
    "metric_window_seconds": WINDOW,
    "surface": "home",
}
ITEMS = [
    {"item_id": f"sku-{i}", "category": ("books", "music", "garden")[i % 3], "price": 5.0 + i}
    for i in range(30)
]


def log_tables(data_dir: Path, out: Path) -> None:
    """Flatten the log's records, in order, into NDJSON tables for DuckDB (no attribution here)."""
    exposures, shown, events, items = [], [], [], []
    seq = 0
    for segment in sorted((data_dir / "log").glob("*.log")):
        for line in segment.read_bytes().splitlines():
            seq += 1
            record = orjson.loads(line[9:])
            if record["op"] == "exposure":
                exposures.append(
                    {k: record[k] for k in ("request_id", "variant", "user_id")}
                    | {"shown_at": record["at"], "seq": seq}
                )
                shown += [{"request_id": record["request_id"], "item_id": i} for i in record["items"]]
            elif record["op"] == "events":
                for index, e in enumerate(record["events"]):
                    events.append(
                        {
                            "seq": seq,
                            "idx": index,
                            "user_id": e["user_id"],
                            "item_id": e["item_id"],
                            "type": e["type"],
                            "ts": e["timestamp"],
                            "request_id": e.get("request_id"),
                            "price": e.get("price"),
                        }
                    )
            elif record["op"] == "items":
                items += [
                    {"seq": seq, "item_id": i["item_id"], "price": i.get("price")} for i in record["items"]
                ]
    write_tables(out, exposures, shown, events, items)


def pooled_p(a: dict[str, Any], b: dict[str, Any]) -> float:
    x_a, n_a, x_b, n_b = a["clicked_exposures"], a["exposures"], b["clicked_exposures"], b["exposures"]
    pooled = (x_a + x_b) / (n_a + n_b)
    z = (x_b / n_b - x_a / n_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return math.erfc(abs(z) / math.sqrt(2))


def recommend(server: Server, user: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = server.get_json(f"/v1/users/{user}/recommendations", k=5, **params)
    return body


def test_a_fifty_fifty_experiment_splits_attributes_and_survives_kill_9(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    server.put_items(ITEMS)
    server.send_events(
        [{"user_id": f"seed-{i}", "item_id": f"sku-{i % 30}", "type": "view"} for i in range(90)]
    )
    put = server.client.put("/v1/experiments/home-fresh", json=EXPERIMENT)
    assert put.status_code == 200, put.text

    users = [f"user-{i}" for i in range(USERS)]
    first = {u: recommend(server, u, experiment="home-fresh") for u in users}
    assert {a["variant"] for a in first.values()} == {"control", "fresh"}
    assert all(a["experiment"] == "home-fresh" and len(a["items"]) == 5 for a in first.values())
    share = sum(a["variant"] == "fresh" for a in first.values()) / USERS
    assert 0.45 <= share <= 0.55, share
    assert {a["strategy"] for a in first.values() if a["variant"] == "fresh"} == {"hybrid"}
    again = {u: recommend(server, u, surface="home") for u in users[:500]}
    assert all(again[u]["variant"] == first[u]["variant"] for u in again)

    # clicks only for the fresh variant: a third name the answer, a third rely on the latest exposure,
    # the rest click nothing; repeats and items never shown change nothing
    events = []
    for i, user in enumerate(users):
        answer = first[user]
        if answer["variant"] != "fresh" or i % 3 == 2:
            continue
        item = answer["items"][i % 2]["item_id"]
        named = {"request_id": answer["request_id"]} if i % 3 == 0 else {}
        events.append({"user_id": user, "item_id": item, "type": "click", **named})
        events.append({"user_id": user, "item_id": item, "type": "click", **named})
        events.append({"user_id": user, "item_id": "sku-never-shown", "type": "click"})
        if i % 9 == 0:
            events.append({"user_id": user, "item_id": item, "type": "purchase", **named})
    server.send_events(events)

    results = server.get_json("/v1/experiments/home-fresh/results")
    by_name = {v["name"]: v for v in results["variants"]}
    control, fresh = by_name["control"], by_name["fresh"]
    assert fresh["ctr"]["value"] > control["ctr"]["value"] == 0.0
    assert fresh["lift"]["ctr"]["p_value"] < 0.05

    log_tables(server.data_dir, tmp_path)  # type: ignore[arg-type]
    reference = duckdb_results(tmp_path, WINDOW)
    for name, variant in by_name.items():
        expected = reference[name]
        got = {k: variant[k] for k in ("users", "exposures", "clicked_exposures", "clicks", "purchases")}
        assert got == {k: expected[k] for k in got}, name
        assert variant["conversion_rate"]["value"] == pytest.approx(
            expected["converted"] / expected["exposures"]
        )
        assert variant["revenue"] == pytest.approx(expected["revenue"])
        assert variant["ctr"]["value"] == pytest.approx(expected["clicked_exposures"] / expected["exposures"])
    assert fresh["lift"]["ctr"]["p_value"] == pytest.approx(
        pooled_p(reference["control"], reference["fresh"])
    )
    assert reference["fresh"]["clicks"] > 0 and reference["fresh"]["purchases"] > 0

    # kill -9 right after the exposures and events were answered: none is lost, every variant stays
    server.restart(crash=True)
    assert server.get_json("/v1/experiments/home-fresh/results") == results
    after = {u: recommend(server, u, experiment="home-fresh") for u in users}
    assert all(after[u]["variant"] == first[u]["variant"] for u in users)
    exposures = {
        v["name"]: v["exposures"] for v in server.get_json("/v1/experiments/home-fresh/results")["variants"]
    }
    assert sum(exposures.values()) == 2 * USERS + len(again)


def test_an_ended_experiment_answers_with_its_baseline_and_logs_nothing(server: Server) -> None:
    server.put_items(ITEMS)
    assert server.client.put("/v1/experiments/e1", json=EXPERIMENT).status_code == 200
    recommend(server, "u1", experiment="e1")
    ended = server.client.delete("/v1/experiments/e1")
    assert ended.status_code == 200 and ended.json()["active"] is False
    answer = recommend(server, "u1", experiment="e1")
    assert (answer["variant"], answer["strategy"]) == (None, "trending")
    assert sum(v["exposures"] for v in server.get_json("/v1/experiments/e1/results")["variants"]) == 1
    assert server.get("/v1/users/u1/recommendations", surface="home").status_code == 404
    assert server.get("/v1/users/u1/recommendations", experiment="nope").status_code == 404
    listed = server.get_json("/v1/experiments")["experiments"]
    assert [(e["experiment_id"], e["active"]) for e in listed] == [("e1", False)]
