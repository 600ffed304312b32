"""``freshrec serve --workers 3``: every process answers as one in-process engine fed the same events does.

A real server with one writer and two readers on a fresh data directory gets the real DataSQRL clickstream in
batches, each batch posted in chunks over fresh connections (so readers receive some and forward them to the
writer). After each batch's 202s, a set of users' recommendations of every strategy is asked many times over
fresh connections — different processes answer (``X-Freshrec-Worker``) — and each answer must equal what an
in-process :class:`Engine` with the same settings, fed the same events, answers. A reader killed with SIGKILL
is replaced, and the replacement answers the same.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from freshrec.config import load_settings
from freshrec.datasets.files import read_records
from freshrec.engine import Engine
from shared_data import DATASQRL, needs, path_of

if TYPE_CHECKING:
    from conftest import Server, StartServer


STRATEGIES = ("personalized", "session", "trending_for_you", "trending", "covisit", "cf", "hybrid")
ENV = {"FRESHREC_EMBEDDINGS__MODEL": "none", "FRESHREC_CF__RETRAIN_EVERY_SECONDS": "0"}
BATCH = 1000
CHUNK = 125
ASKED = 3  # times each (user, strategy) is asked after each batch


def clicks() -> list[dict[str, Any]]:
    return [record for kind, record in read_records(path_of(DATASQRL) / "clickstream.json.gz")][:6000]


#: no connection is kept: each request opens its own, and whichever process accepts it answers
CLIENT = httpx.Client(timeout=30.0, limits=httpx.Limits(max_keepalive_connections=0))


def fresh_get(url: str, path: str) -> httpx.Response:
    """A GET over a connection of its own."""
    return CLIENT.get(url + path)


def post_chunks(server: Server, events: list[dict[str, Any]]) -> list[str]:
    """Post ``events`` in chunks, each over a new connection; the readers that forwarded a chunk."""
    forwarded = []
    for start in range(0, len(events), CHUNK):
        response = CLIENT.post(server.url + "/v1/events", json=events[start : start + CHUNK])
        assert response.status_code == 202, response.text
        assert response.headers["x-freshrec-worker"] == str(writer_pid(server))  # the writer answers writes
        if "x-freshrec-forwarded-by" in response.headers:
            forwarded.append(response.headers["x-freshrec-forwarded-by"])
    return forwarded


def writer_pid(server: Server) -> int:
    assert server.process is not None
    return server.process.pid


def expected(engine: Engine, user: str, strategy: str) -> list[list[Any]]:
    recs = engine.recommend(user, strategy, k=20, category=None, exclude_purchased=True, explain=False)
    return [[r.item_id, r.score] for r in recs]


def check_answers(server: Server, engine: Engine, users: list[str]) -> Counter[str]:
    """Every answer equals the engine's; returns how many answers each process gave."""
    answered: Counter[str] = Counter()
    wrong = []
    for user in users:
        for strategy in STRATEGIES:
            want = expected(engine, user, strategy)
            for _ in range(ASKED):
                response = fresh_get(server.url, f"/v1/users/{user}/recommendations?strategy={strategy}")
                assert response.status_code == 200, response.text
                pid = response.headers["x-freshrec-worker"]
                answered[pid] += 1
                got = [[i["item_id"], i["score"]] for i in response.json()["items"]]
                if got != want:
                    wrong.append((pid, user, strategy, got[:3], want[:3]))
    assert not wrong, f"{len(wrong)} answers differ from the single-process engine, e.g. {wrong[:2]}"
    return answered


@needs(DATASQRL)
def test_every_worker_answers_as_the_single_process_engine(start_server: StartServer) -> None:
    events = clicks()
    users = [u for u, _ in Counter(e["user_id"] for e in events[:BATCH]).most_common(6)] + ["nobody"]
    engine = Engine(
        load_settings(clock="event", embeddings={"model": "none"}, cf={"retrain_every_seconds": 0})
    )
    server = start_server(clock="event", env=ENV, workers=3)
    writer = str(writer_pid(server))
    forwarded: list[str] = []
    processes: set[str] = set()
    killed: str | None = None
    replacement: str | None = None
    after_kill: Counter[str] = Counter()
    for number, start in enumerate(range(0, len(events), BATCH)):
        batch = events[start : start + BATCH]
        forwarded += post_chunks(server, batch)
        engine.ingest(batch)
        answered = check_answers(server, engine, users)
        assert len(answered) >= 2, f"one process answered everything: {answered}"
        processes |= set(answered)
        if replacement is not None:
            after_kill += answered
        if number == 2:  # a reader dies; another takes its place, from the current state
            killed = next(pid for pid in sorted(processes) if pid != writer)
            os.kill(int(killed), signal.SIGKILL)
            replacement = wait_for_new_process(server, processes)
            processes.add(replacement)
    assert killed is not None
    assert replacement in after_kill, after_kill  # the replacement's answers were checked too
    assert killed not in after_kill
    assert len(processes) >= 4, processes  # the writer, two readers, the replacement
    assert forwarded, "no chunk was received by a reader"
    assert writer not in forwarded
    # writes through readers were applied once: every process counts each event once
    counts = {
        (r.headers["x-freshrec-worker"], r.json()["applied_events"])
        for r in (fresh_get(server.url, "/health") for _ in range(20))
    }
    assert {applied for _, applied in counts} == {engine.applied_events}, counts
    again = post_chunks(server, events[:CHUNK])  # re-sent: duplicates everywhere, nothing applied twice
    assert all(
        fresh_get(server.url, "/health").json()["applied_events"] == engine.applied_events for _ in range(10)
    ), again


def wait_for_new_process(server: Server, known: set[str], timeout: float = 20.0) -> str:
    """The PID of a process that had not answered before (the killed reader's replacement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = fresh_get(server.url, "/health")
        pid = response.headers["x-freshrec-worker"]
        if response.status_code == 200 and pid not in known:
            return pid
        time.sleep(0.02)
    raise AssertionError(f"no new process answered within {timeout} s; known {known}")
