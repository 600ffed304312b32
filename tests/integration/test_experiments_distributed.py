"""An experiment in distributed mode: two API replicas and workers on real Valkey and Tansu servers.

Users are served through a 50/50 experiment by both replicas (the same variant from either, on every
call), clicks and purchases are posted for one variant only, a worker is SIGKILLed while it applies the
stream and another takes over, and ``/results`` must equal the attribution rules computed in DuckDB
(:mod:`support.experiment_sql`) over the exposures as the clients received them and the events as they
were posted, in that order: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.deployment import Deployment, deployment
from support.experiment_sql import duckdb_results, write_tables
from support.kafka_broker import KafkaBroker
from support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.heavy

WINDOW = 1800.0
USERS = 240
EXPERIMENT = {
    "variants": [
        {"name": "control", "weight": 50, "strategy": "trending"},
        {"name": "fresh", "weight": 50, "strategy": "personalized"},
    ],
    "metric_window_seconds": WINDOW,
}
ITEMS = [{"item_id": f"sku-{i}", "category": ("a", "b", "c")[i % 3], "price": 2.0 + i} for i in range(24)]
EVENT_COLUMNS = ("seq", "idx", "user_id", "item_id", "type", "ts", "request_id")
COUNTS = ("users", "exposures", "clicked_exposures", "clicks", "purchases")
WALL = {"FRESHREC_CLOCK": "wall"}  # exposures are stamped with the replica's clock, events with the poster's


@pytest.fixture
def running(kafka_broker: KafkaBroker) -> Iterator[tuple[Deployment, httpx.Client]]:
    with RedisServer() as redis, deployment(redis.url, kafka_broker.bootstrap, "exp") as dep:
        dep.run(*serve_args(dep, dep.port), env=WALL)
        dep.wait_for(lambda: healthy(dep.client), 60, "replica A")
        port = free_port()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as other:
            dep.run(*serve_args(dep, port), env=WALL)
            dep.wait_for(lambda: healthy(other), 60, "replica B")
            yield dep, other


def serve_args(dep: Deployment, port: int) -> tuple[str, ...]:
    return ("-m", "freshrec.cli", "serve", "--state", dep.state, "--kafka", dep.bootstrap,
            "--port", str(port))  # fmt: skip


def start_worker(dep: Deployment) -> Any:
    proc = dep.run("-m", "freshrec.cli", "worker", "--state", dep.state, "--kafka", dep.bootstrap, env=WALL)
    dep.workers.append(proc)
    return proc


def healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def recommend(client: httpx.Client, user: str) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user}/recommendations", params={"k": 5, "experiment": "exp"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def results(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/experiments/exp/results")
    assert response.status_code == 200, response.text
    return {v["name"]: v for v in response.json()["variants"]}


def test_two_replicas_and_a_killed_worker_give_the_results_duckdb_computes(
    running: tuple[Deployment, httpx.Client], tmp_path: Path
) -> None:
    dep, replica_b = running
    replica_a = dep.client
    worker = start_worker(dep)
    dep.put_items(ITEMS)
    dep.wait_for(lambda: dep.catalog_is(ITEMS), 60, "the catalog")
    put = replica_a.put("/v1/experiments/exp", json=EXPERIMENT)
    assert put.status_code == 200, put.text
    assert replica_b.get("/v1/experiments/exp").json()["variants"] == put.json()["variants"]

    # every user is served by both replicas, twice by one of them: one variant per user
    users = [f"user-{i}" for i in range(USERS)]
    exposures: list[dict[str, Any]] = []  # in the order the clients received them
    shown: list[dict[str, str]] = []
    seq = 0
    for n, user in enumerate(users):
        if n == USERS // 2:  # a worker SIGKILLed while exposures stream in; another takes over
            dep.signal(worker, signal.SIGKILL)
            worker = start_worker(dep)
        for client in (replica_a, replica_b, replica_a if n % 2 else replica_b):
            answer = recommend(client, user)
            seq += 1
            exposures.append(
                {"request_id": answer["request_id"], "variant": answer["variant"], "user_id": user}
                | {"shown_at": time.time(), "seq": seq, "items": [i["item_id"] for i in answer["items"]]}
            )
            shown += [{"request_id": answer["request_id"], "item_id": i["item_id"]} for i in answer["items"]]
    variant = {x["user_id"]: x["variant"] for x in exposures}
    assert all(x["variant"] == variant[x["user_id"]] for x in exposures)
    share = sum(v == "fresh" for v in variant.values()) / USERS
    assert 0.35 <= share <= 0.65, share

    # clicks for the fresh variant only: naming an answer, or relying on the latest exposure showing the
    # item; repeats and items never shown change nothing; a third of those users also buy
    events: list[dict[str, Any]] = []
    for n, user in enumerate(users):
        mine = [x for x in exposures if x["user_id"] == user]
        if variant[user] != "fresh" or n % 4 == 3 or not mine[0]["items"]:
            events.append({"user_id": user, "item_id": "sku-1", "type": "view"})
            continue
        pick = mine[n % len(mine)]
        item = pick["items"][n % len(pick["items"])]
        named = {"request_id": pick["request_id"]} if n % 2 else {}
        events.append({"user_id": user, "item_id": item, "type": "click", **named})
        events.append({"user_id": user, "item_id": item, "type": "click", **named})
        events.append({"user_id": user, "item_id": "sku-never-shown", "type": "click"})
        if n % 3 == 0:
            events.append({"user_id": user, "item_id": item, "type": "purchase", **named})
    for n, event in enumerate(events):
        event |= {"event_id": f"ev-{n}", "timestamp": time.time()}

    # post in chunks through replica B; SIGKILL the worker while it applies them, then start another
    chunks = [events[lo : lo + 40] for lo in range(0, len(events), 40)]
    for n, chunk in enumerate(chunks):
        response = replica_b.post("/v1/events", json=chunk)
        assert response.status_code == 202, response.text
        if n == len(chunks) // 3:
            dep.signal(worker, signal.SIGKILL)
            start_worker(dep)
    unique = len(events)
    dep.wait_for(lambda: dep.applied() >= unique, 120, f"{unique} events applied")
    expected_exposures = len(exposures)
    dep.wait_for(
        lambda: sum(v["exposures"] for v in results(replica_a).values()) >= expected_exposures,
        60,
        "every exposure applied",
    )
    time.sleep(1.0)  # a double count would show now
    assert dep.applied() == unique

    rows = [dict(e, seq=seq + n + 1, idx=0, ts=e["timestamp"]) for n, e in enumerate(events)]
    write_tables(
        tmp_path,
        [{k: x[k] for k in ("request_id", "variant", "user_id", "shown_at", "seq")} for x in exposures],
        shown,
        [{k: r.get(k) for k in EVENT_COLUMNS} for r in rows],
        [{"seq": 0, "item_id": i["item_id"], "price": i["price"]} for i in ITEMS],
    )
    reference = duckdb_results(tmp_path, WINDOW)
    for replica in (replica_a, replica_b):
        got = results(replica)
        for name in ("control", "fresh"):
            want = reference[name]
            have = {k: got[name][k] for k in COUNTS}
            assert have == {k: want[k] for k in have}, name
            assert got[name]["revenue"] == pytest.approx(want["revenue"])
            conversion = want["converted"] / want["exposures"]
            assert got[name]["conversion_rate"]["value"] == pytest.approx(conversion)
    fresh = results(replica_b)["fresh"]
    assert fresh["clicks"] > 0 and fresh["purchases"] > 0 and fresh["lift"]["ctr"]["p_value"] < 0.05
    assert results(replica_a)["control"]["clicks"] == 0
