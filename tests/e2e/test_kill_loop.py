"""kill -9 at random points of ingestion, again and again, then every view against its DuckDB definition.

A real ``freshrec serve`` on a data directory (default process layout, snapshots every few hundred events so
that kills also land while a snapshot is written) is fed the conformance data set in chunks, the way an
at-least-once client does: a chunk whose request failed is sent again after the restart. A timer sends
SIGKILL to the server a random few milliseconds into a random chunk's request, so a kill lands before,
during or after the chunk is journaled and acknowledged.

After every restart, the events the server holds must be exactly the acknowledged ones, plus either all or
none of the chunk that was in flight (one chunk is one log record): nothing acknowledged is lost, nothing is
counted twice. At the end every view equals its SQL definition computed by DuckDB over the same events
(tests/support, SPEC §3). The default run makes 3 kills; ``-m slow`` makes 20 (docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import signal
import threading
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from support import VIEW_COLUMNS, dataset, expected_view, row_differences

if TYPE_CHECKING:
    from conftest import Server, StartServer

pytestmark = pytest.mark.heavy

DATASET = "default"
CHUNK = 100
SEED = int(os.environ.get("FRESHREC_KILL_SEED", "20261207"))
ENV = {
    "FRESHREC_EMBEDDINGS__MODEL": "none",
    # the generated stream arrives up to days late, as in the conformance tests
    "FRESHREC_VIEWS__CO_VISIT_ALLOWED_LATENESS_SECONDS": str(40 * 86_400),
    "FRESHREC_STORAGE__SNAPSHOT_EVERY_EVENTS": "700",
}


class Client:
    """An at-least-once producer: it remembers what the server acknowledged and what is in doubt."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.acknowledged: set[str] = set()
        self.in_doubt: set[str] = set()

    def post(self, chunk: list[dict[str, Any]]) -> bool:
        """Send ``chunk``; True when it was acknowledged (202), False when the request died with the server
        (no answer, or a reader's 503 because the writer it forwards to is gone)."""
        ids = {e["event_id"] for e in chunk}
        try:
            response = self.server.post_events(chunk)
        except httpx.TransportError:
            response = None
        if response is None or response.status_code == 503:
            self.in_doubt = ids - self.acknowledged
            return False
        assert response.status_code == 202, response.text
        self.acknowledged |= ids
        self.in_doubt = set()
        return True


def held_events(server: Server) -> int:
    return int(server.get_json("/health")["applied_events"])


def kill_during(server: Server, client: Client, chunk: list[dict[str, Any]], delay: float) -> None:
    """Post ``chunk`` while a timer SIGKILLs the server ``delay`` seconds into the request."""
    assert server.process is not None
    pid = server.process.pid
    timer = threading.Timer(delay, os.kill, (pid, signal.SIGKILL))
    timer.start()
    client.post(chunk)
    timer.join()
    server.kill9()  # reaps the killed process (and kills it if the timer fired after the answer)


def run_cycles(start_server: StartServer, kills: int) -> None:
    items, events = dataset(DATASET)
    chunks = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]
    assert len(chunks) > kills * 2
    rng = random.Random(SEED + kills)
    # kill points: distinct chunks, spread over the stream, none of them the first
    kill_at = sorted(rng.sample(range(1, len(chunks)), kills))

    server = start_server(clock="event", env=ENV)
    for start in range(0, len(items), 200):
        server.put_items(items[start : start + 200])
    client = Client(server)
    for n, chunk in enumerate(chunks):
        if n not in kill_at:
            assert client.post(chunk), f"chunk {n} failed with no kill"
            continue
        kill_during(server, client, chunk, delay=rng.uniform(0.0, 0.03))
        server.start()
        held = held_events(server)
        all_of_it = len(client.acknowledged | client.in_doubt)
        assert held in (len(client.acknowledged), all_of_it), (
            f"after the kill in chunk {n}: the server holds {held} events; acknowledged "
            f"{len(client.acknowledged)}, in flight {len(client.in_doubt)}"
        )
        # the client's retry of a request that died: applied once whether or not it had been journaled
        assert client.post(chunk), f"re-sending chunk {n} after the restart failed"
        assert held_events(server) == len(client.acknowledged)

    distinct = {e["event_id"] for e in events}
    assert client.acknowledged == distinct
    assert held_events(server) == len(distinct)
    assert_views_equal_sql(server)


def assert_views_equal_sql(server: Server) -> None:
    problems: dict[str, list[str]] = {}
    for view, (keys, columns) in VIEW_COLUMNS.items():
        body = server.get_json(f"/v1/views/{view}", limit=100_000)
        assert body["total"] == len(body["rows"]), view
        differences = row_differences(expected_view(DATASET, view), body["rows"], keys, columns)
        if differences:
            problems[view] = differences
    assert not problems, problems


def test_kill9_at_random_points_of_ingestion_loses_and_doubles_nothing(start_server: StartServer) -> None:
    run_cycles(start_server, kills=3)


@pytest.mark.slow
def test_kill9_at_random_points_of_ingestion_20_cycles(start_server: StartServer) -> None:
    run_cycles(start_server, kills=20)
