"""Durability of the embedded data directory (SPEC §7), against real server processes.

What was acknowledged survives kill -9, a graceful stop, a snapshot followed by a log tail and a torn last
line; re-sending acknowledged ``event_id``s changes nothing. The servers run with ``--clock event`` so that
"now" is the largest event time and answers do not drift with the wall clock between two observations.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Server, StartServer

pytestmark = pytest.mark.heavy

CATEGORIES = ("books", "garden", "toys", "music", "sports", "beauty")
TYPES = (
    "view",
    "view",
    "view",
    "view",
    "click",
    "click",
    "add_to_cart",
    "wishlist",
    "save",
    "share",
    "purchase",
)
N_USERS = 30
N_EVENTS = 2_000
BATCH = 200
END_TS = 1_734_567_890.25  # a fixed instant (December 2024), on no window boundary
WATCHED_USERS = ("user-00", "user-01", "user-07", "user-13", "user-29")
STRATEGIES = ("personalized", "session", "trending_for_you", "trending", "hybrid")
PER_PROCESS = frozenset({"duplicate_events", "process", "workers"})
VIEWS = (
    "user_category_profile",
    "user_category_affinity",
    "user_brand_profile",
    "user_price_sensitivity",
    "user_recent_activity",
    "content_trending",
    "item_popularity",
    "user_history",
)


def _items(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for n in range(72):
        category = CATEGORIES[n % len(CATEGORIES)]
        items.append(
            {
                "item_id": f"item-{n:03d}",
                "title": f"Item {n}",
                "category": category,
                "brand": f"brand-{rng.randrange(8)}",
                "price": rng.choice((0.0, 9.5, 25.0, 49.0, 99.99, 100.0, 240.0, 500.0, 1200.0)),
                "in_stock": n % 17 != 5,
                "tags": [category, f"t{n % 4}"],
            }
        )
    return items


def _events(rng: random.Random) -> list[dict[str, Any]]:
    """A clickstream over 9 days, dense in the last two hours, with some late arrivals and unknown items."""
    events = []
    for n in range(N_EVENTS):
        if n < N_EVENTS * 0.7:
            ts = END_TS - 9 * 86_400 + rng.random() * (9 * 86_400 - 7_200)
        else:
            ts = END_TS - rng.random() * 7_200
        user = f"user-{rng.randrange(N_USERS):02d}"
        event: dict[str, Any] = {
            "event_id": f"evt-{n:05d}",
            "user_id": user,
            "item_id": f"item-{rng.randrange(80):03d}",  # items 72..79 are known only from events
            "type": rng.choice(TYPES),
            "timestamp": ts,
            "session_id": f"{user}-s{int(ts // 3_600)}",
        }
        if rng.random() < 0.3:
            event["dwell_seconds"] = round(rng.random() * 120, 3)
        if event["item_id"] >= "item-072":
            event.update(category=rng.choice(CATEGORIES), brand="brand-x", price=rng.choice((5.0, 150.0)))
        if rng.random() < 0.05:
            event["properties"] = {"source": "email", "n": n}
        events.append(event)
    events.sort(key=lambda e: float(e["timestamp"]))
    # about a tenth of the events arrive late: moved some places forward in the stream
    for _ in range(N_EVENTS // 10):
        i = rng.randrange(N_EVENTS - 50)
        events.insert(i + rng.randrange(1, 50), events.pop(i))
    for event in events:
        if rng.random() < 0.2:  # RFC 3339 instead of unix seconds
            stamp = datetime.fromtimestamp(event["timestamp"], UTC).isoformat()
            event["timestamp"] = stamp.replace("+00:00", "Z")
    # the largest timestamp goes last so that the clock ends at END_TS whatever the shuffle did
    events.append(
        {
            "event_id": "evt-last",
            "user_id": "user-00",
            "item_id": "item-000",
            "type": "view",
            "timestamp": END_TS,
        }
    )
    return events


RNG = random.Random(20_241_218)
ITEMS = _items(RNG)
EVENTS = _events(RNG)
BATCHES = [EVENTS[i : i + BATCH] for i in range(0, len(EVENTS), BATCH)]


def start(start_server: StartServer, **env: str) -> Server:
    return start_server(clock="event", env=env)


def load(server: Server, batches: list[list[dict[str, Any]]] = BATCHES) -> None:
    """The catalog, every batch of events (each acknowledged), then a catalog update and a delete."""
    server.put_items(ITEMS)
    for batch in batches:
        body = server.send_events(batch)
        ids = [e["event_id"] for e in batch]
        assert body == {"accepted": len(batch), "duplicates": 0, "event_ids": ids}
    changed = {**ITEMS[1], "price": 15.0, "brand": "brand-new"}
    assert server.client.put(f"/v1/items/{changed['item_id']}", json=changed).status_code == 200
    assert server.client.delete(f"/v1/items/{ITEMS[2]['item_id']}").status_code == 200


def observe(server: Server) -> dict[str, Any]:
    """Everything a client can read that depends on the applied events and items."""
    health = server.get_json("/health")
    state: dict[str, Any] = {
        # re-sends counted since the server started, and which of its processes answered: not state
        "health": {k: v for k, v in health.items() if k not in PER_PROCESS},
        "trending": server.get_json("/v1/trending", k=30),
        "items": {
            item_id: server.get(f"/v1/items/{item_id}").json()
            for item_id in ("item-000", "item-001", "item-002", "item-005", "item-075", "item-079")
        },
    }
    for view in VIEWS:
        body = server.get_json(f"/v1/views/{view}", limit=100_000)
        assert body["total"] == len(body["rows"])
        state[f"view:{view}"] = body["rows"]
    for user in WATCHED_USERS:
        state[f"profile:{user}"] = server.get_json(f"/v1/users/{user}/profile", limit=1000)
        state[f"view:user_history:{user}"] = server.get_json("/v1/views/user_history", user_id=user)
        for strategy in STRATEGIES:
            for exclude in ("true", "false"):
                body = server.get_json(
                    f"/v1/users/{user}/recommendations",
                    strategy=strategy,
                    k=25,
                    explain="true",
                    exclude_purchased=exclude,
                )
                del body["request_id"]
                state[f"recs:{user}:{strategy}:{exclude}"] = body
    return state


def assert_same(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert after.keys() == before.keys()
    differing = [key for key in before if after[key] != before[key]]
    detail = {
        key: {
            f: (before[key].get(f), after[key].get(f))
            for f in before[key].keys() | after[key].keys()
            if before[key].get(f) != after[key].get(f)
        }
        for key in differing[:3]
        if isinstance(before[key], dict)
    }
    assert not differing, f"differs after restart: {differing[:10]} {detail}"


def log_segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "log").glob("*.log"))


def test_sanity_of_the_observed_state(start_server: StartServer) -> None:
    """The observation is not vacuous: every view and strategy has content at the end of the stream."""
    server = start(start_server)
    load(server)
    state = observe(server)
    assert state["health"]["applied_events"] == len(EVENTS)
    assert state["health"]["now"] == END_TS
    assert all(state[f"view:{view}"] for view in VIEWS), [v for v in VIEWS if not state[f"view:{v}"]]
    assert state["trending"]["fallback"] is None
    for user in WATCHED_USERS:
        for strategy in STRATEGIES:
            assert state[f"recs:{user}:{strategy}:true"]["items"], (user, strategy)
    assert state["items"]["item-002"] == {"error": "not found: item 'item-002'", "details": []}


def test_kill9_then_restart_and_resend_change_nothing(start_server: StartServer) -> None:
    server = start(start_server)
    load(server)
    before = observe(server)

    server.restart(crash=True)
    assert_same(observe(server), before)

    # the same event_ids with the same payloads, again: accepted, and nothing changes
    for batch in BATCHES:
        body = server.send_events(batch)
        ids = [e["event_id"] for e in batch]
        assert body == {"accepted": len(batch), "duplicates": len(batch), "event_ids": ids}
    after_resend = observe(server)
    assert_same(after_resend, before)
    assert server.get_json("/health")["duplicate_events"] == len(EVENTS)

    # ... and nothing of the re-sends was journaled to be counted at the next recovery
    server.restart(crash=True)
    assert_same(observe(server), before)


def test_graceful_stop_snapshots_and_restarts_identical(start_server: StartServer) -> None:
    server = start(start_server)
    load(server)
    before = observe(server)
    assert server.data_dir is not None

    server.stop()
    snapshots = sorted((server.data_dir / "snapshots").glob("snapshot-*[0-9]"))
    assert snapshots, "a graceful stop should write a snapshot"
    server.start()
    assert_same(observe(server), before)

    # a second graceful cycle (snapshot of a restored engine) and a crash after it
    server.restart()
    assert_same(observe(server), before)
    server.restart(crash=True)
    assert_same(observe(server), before)


def newest_snapshot_and_log_end(data_dir: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """The log position (segment, offset) the newest snapshot covers (named by it), and the log end."""
    snapshots = sorted((data_dir / "snapshots").glob("snapshot-*[0-9]"))
    assert snapshots, "snapshots should have been written mid-stream"
    segment, offset = (int(part) for part in snapshots[-1].stem.split("-")[1:])
    last = log_segments(data_dir)[-1]
    return (segment, offset), (int(last.stem), last.stat().st_size)


def test_kill9_after_snapshots_with_a_log_tail(start_server: StartServer) -> None:
    server = start(start_server, FRESHREC_STORAGE__SNAPSHOT_EVERY_EVENTS="450")
    load(server)
    assert server.data_dir is not None
    # a snapshot due while the previous one is still being written waits for a later record, so under load
    # the last write may be covered; a few more events (at the stream's end time) leave a tail
    for n in range(10):
        time.sleep(0.5)  # a background snapshot in progress lands first
        deadline = time.monotonic() + 15
        while any((server.data_dir / "snapshots").glob("*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.1)
        covered, end = newest_snapshot_and_log_end(server.data_dir)
        if end > covered:
            break
        server.send_events([{**EVENTS[-1], "event_id": f"evt-tail-{n}"}])
    before = observe(server)

    server.kill9()
    covered, end = newest_snapshot_and_log_end(server.data_dir)
    assert end > covered, "expected a log tail after the snapshot"

    server.start()
    assert_same(observe(server), before)
    for batch in BATCHES[:3]:
        server.send_events(batch)
    assert_same(observe(server), before)
    server.restart()
    assert_same(observe(server), before)


def test_torn_log_tail_is_cut_off(start_server: StartServer) -> None:
    server = start(start_server)
    load(server, BATCHES[:-1])
    before = observe(server)
    assert server.data_dir is not None

    server.kill9()
    last = log_segments(server.data_dir)[-1]
    size = last.stat().st_size
    with last.open("ab") as fh:  # a record whose write was cut short by the crash
        fh.write(b'0badc0de {"op": "events", "events": [{"event_id": "evt-torn", "user_id": "us')
    server.start()
    assert_same(observe(server), before)
    assert last.stat().st_size == size, "the torn tail should be cut off"

    # the log goes on cleanly after the cut: a new batch survives the next crash
    server.send_events(BATCHES[-1])
    after = observe(server)
    assert after["health"]["applied_events"] == len(EVENTS)
    server.restart(crash=True)
    assert_same(observe(server), after)
