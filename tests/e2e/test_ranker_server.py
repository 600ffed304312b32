"""The hybrid ranker in a real server: trained on demand from the log, served, explained, in /metrics,
persisted across a restart."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from freshrec.demo.scenario import generate_scenario

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.heavy

ENV = {
    "FRESHREC_EMBEDDINGS__MODEL": "none",
    "FRESHREC_CF__RETRAIN_EVERY_SECONDS": "0",
    "FRESHREC_RANKER__RETRAIN_EVERY_SECONDS": "0",
    "FRESHREC_RANKER__MAX_QUERIES": "300",
    "FRESHREC_RANKER__MIN_DATA_IN_LEAF": "5",
    "FRESHREC_RANKER__TREES": "30",
}


def test_the_ranker_is_trained_from_the_log_served_and_kept(start_server: StartServer) -> None:
    scenario = generate_scenario(
        n_users=40, n_items=150, seed=3, start=1_700_000_000, duration_seconds=3 * 3600
    )
    server = start_server(clock="event", env=ENV)
    server.put_items(scenario.items)
    for start in range(0, len(scenario.events), 2000):
        server.send_events(scenario.events[start : start + 2000])
    user = scenario.events[-1]["user_id"]
    before = server.get_json(f"/v1/users/{user}/recommendations", strategy="hybrid", k=10, explain="true")
    assert all("ranker" not in item["reasons"] for item in before["items"])  # no ranker yet: the blend
    assert server.get_json("/v1/admin/models")["ranker"]["model"] is None
    assert "freshrec_ranker_version 0.0" in server.get("/metrics").text

    response = server.client.post("/v1/admin/train")
    assert response.status_code == 200, response.text
    ranker = response.json()["ranker"]
    assert ranker["version"] == 1
    assert ranker["events"] == len(scenario.events)
    assert ranker["metrics"]["held_out_queries"] > 0

    after = server.get_json(f"/v1/users/{user}/recommendations", strategy="hybrid", k=10, explain="true")
    assert len(after["items"]) == 10
    for item in after["items"]:
        assert item["reasons"]["ranker"] == 1
        assert item["reasons"]["sources"]
        assert len(item["reasons"]["top_features"]) == 3
    metrics = server.get("/metrics").text
    assert "freshrec_ranker_version 1.0" in metrics
    assert 'freshrec_ranker_offline{metric="ndcg@10",model="ranker"}' in metrics
    assert "freshrec_ranker_age_seconds" in metrics

    server.restart()
    models = server.get_json("/v1/admin/models")["ranker"]
    assert models["model"]["version"] == 1
    again = server.get_json(f"/v1/users/{user}/recommendations", strategy="hybrid", k=10)
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in after["items"]]


def test_a_server_stopped_while_training_exits_promptly_and_keeps_its_models(
    start_server: StartServer,
) -> None:
    """SIGTERM during a long ranker replay: the training gives up at its next step (the process waits for
    its threads before exiting), nothing half-trained is swapped in, the CF model trained first is kept."""
    scenario = generate_scenario(n_users=150, n_items=600, seed=11)
    env = {**ENV, "FRESHREC_RANKER__MAX_QUERIES": "100000", "FRESHREC_RANKER__TREES": "300"}
    server = start_server(env=env)
    server.put_items(scenario.items)
    for start in range(0, len(scenario.events), 5000):
        server.send_events(scenario.events[start : start + 5000])
    outcome: list[object] = []

    def train() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60.0) as client:
                outcome.append(client.post("/v1/admin/train").status_code)
        except httpx.TransportError as exc:  # the server went away under the request
            outcome.append(exc)

    trainer = threading.Thread(target=train)
    trainer.start()
    deadline = time.monotonic() + 20
    while not server.get_json("/v1/admin/models")["ranker"]["training"]:
        assert time.monotonic() < deadline, "the ranker training never started"
        time.sleep(0.05)
    started = time.monotonic()
    assert server.stop(timeout=9.0) == 0
    stopped = time.monotonic() - started
    trainer.join(10)
    assert outcome and outcome[0] != 200, outcome  # the training did not finish
    assert "ranker training stopped: the server is stopping" in server.stderr()
    assert "Traceback" not in server.stderr()
    assert stopped < 9.0

    server.start()
    models = server.get_json("/v1/admin/models")
    assert models["ranker"]["model"] is None
    assert models["cf"]["model"]["version"] == 1
