"""CF models in a real server: on-demand and scheduled training, a swap under load, persistence, the CLI."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from conftest import FRESHREC

if TYPE_CHECKING:
    from conftest import Server, StartServer

pytestmark = pytest.mark.heavy

ON_DEMAND = {"FRESHREC_EMBEDDINGS__MODEL": "none", "FRESHREC_CF__RETRAIN_EVERY_SECONDS": "0"}
A = [f"a{i}" for i in range(20)]
B = [f"b{i}" for i in range(20)]


def _load(server: Server, users: int = 120, start: int = 0) -> None:
    server.put_items([{"item_id": i, "category": "films" if i in A else "music"} for i in A + B])
    events: list[dict[str, Any]] = []
    for u in range(start, start + users):
        side = A if u % 2 == 0 else B
        for n in range(8):
            item = side[(u * 7 + n * 3) % 20]
            events.append(
                {
                    "event_id": f"e-{u}-{n}",
                    "user_id": f"u{u}",
                    "item_id": item,
                    "type": "purchase" if n % 3 == 0 else "view",
                    "timestamp": 1_700_000_000 + u * 60 + n,
                }
            )
    server.send_events(events)


def _train(server: Server) -> dict[str, Any]:
    response = server.client.post("/v1/admin/train")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _version(server: Server) -> int | None:
    model = server.get_json("/v1/admin/models")["cf"]["model"]
    return None if model is None else int(model["version"])


def test_training_on_demand_then_cf_answers_from_the_model(start_server: StartServer) -> None:
    server = start_server(clock="event", env=ON_DEMAND)
    assert _version(server) is None
    _load(server)
    body = _train(server)
    assert body["trained"] and body["model"]["version"] == 1
    assert body["model"]["users"] == 120 and body["model"]["items"] == 40
    recs = server.get_json("/v1/users/u0/recommendations", strategy="cf", k=5, explain="true")
    assert len(recs["items"]) == 5
    assert all("cf" in item["reasons"] for item in recs["items"])
    assert all(item["item_id"] in A for item in recs["items"])
    similar = server.get_json("/v1/items/a0/recommendations", strategy="cf", k=5)
    assert similar["strategy"] == "cf" and all(i["item_id"] in A for i in similar["items"])


def test_a_retrain_swaps_in_under_load_without_errors(start_server: StartServer) -> None:
    server = start_server(clock="event", env=ON_DEMAND)
    _load(server)
    _train(server)
    statuses: Counter[int] = Counter()
    empty: list[str] = []
    stop = threading.Event()

    def hammer(worker: int) -> None:
        import httpx

        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            n = 0
            while not stop.is_set():
                user = f"u{(worker * 31 + n) % 120}"
                strategy = ("cf", "hybrid")[n % 2]
                response = client.get(f"/v1/users/{user}/recommendations", params={"strategy": strategy})
                statuses[response.status_code] += 1
                if response.status_code == 200 and not response.json()["items"]:
                    empty.append(f"{user}/{strategy}")
                n += 1

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        for round_ in range(5):
            _load(server, users=20, start=1000 + 20 * round_)  # new users arrive between trainings
            assert _train(server)["model"]["version"] == round_ + 2
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 50
    assert not empty
    assert _version(server) == 6
    assert server.get_json("/v1/admin/models")["cf"]["model"]["users"] == 220


def test_the_model_persists_and_the_cli_trains_a_stopped_data_dir(start_server: StartServer) -> None:
    server = start_server(clock="event", env=ON_DEMAND)
    _load(server)
    _train(server)
    before = server.get_json("/v1/users/u3/recommendations", strategy="cf", k=10)["items"]
    server.restart()
    assert _version(server) == 1
    assert server.get_json("/v1/users/u3/recommendations", strategy="cf", k=10)["items"] == before

    # `freshrec train --url` asks the running server
    done = subprocess.run(
        [str(FRESHREC), "train", "--url", server.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "CF model v2" in done.stderr
    assert _version(server) == 2

    # `freshrec train --data-dir` refuses a directory in use, then trains it once the server is stopped
    assert server.data_dir is not None
    locked = subprocess.run(
        [str(FRESHREC), "train", "--data-dir", str(server.data_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert locked.returncode != 0 and "in use" in locked.stderr
    server.stop()
    offline = subprocess.run(
        [str(FRESHREC), "train", "--data-dir", str(server.data_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert offline.returncode == 0, offline.stderr
    assert "CF model v3" in offline.stderr
    server.start()
    assert _version(server) == 3


def test_the_schedule_trains_once_events_arrive(start_server: StartServer) -> None:
    env = {"FRESHREC_EMBEDDINGS__MODEL": "none", "FRESHREC_CF__RETRAIN_EVERY_SECONDS": "0.5"}
    server = start_server(clock="event", env=env)
    _load(server)
    deadline = time.monotonic() + 20.0
    while _version(server) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _version(server) == 1
    assert server.get_json("/health")["cf_model_version"] == 1
    # nothing new: no retrain; new events: a retrain
    time.sleep(1.5)
    assert _version(server) == 1
    _load(server, users=4, start=500)
    deadline = time.monotonic() + 20.0
    while _version(server) == 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _version(server) == 2


def test_training_errors_are_clear(start_server: StartServer) -> None:
    server = start_server(clock="event", env={**ON_DEMAND, "FRESHREC_CF__ENABLED": "false"})
    response = server.client.post("/v1/admin/train")
    assert response.status_code == 409
    assert "disabled" in response.json()["error"]
    empty = start_server(clock="event", env=ON_DEMAND)
    body = _train(empty)
    # nothing to learn from: neither a CF model nor a ranker (the server has a data directory)
    assert body == {
        "trained": False,
        "collect_seconds": body["collect_seconds"],
        "model": None,
        "ranker": None,
    }
