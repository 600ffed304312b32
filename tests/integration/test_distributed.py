"""Distributed mode against real servers: Valkey (Redis protocol) and Tansu (Kafka protocol), started here.

The same generated stream goes to an embedded engine and through Kafka to ``freshrec worker`` processes that
apply it to Redis; every view and every strategy's answers must be the same. Then the faults: a worker
SIGKILLed mid-stream (nothing lost, nothing counted twice), and a Redis outage (the API answers degraded,
with a header, instead of failing, and recovers by itself).

Events of items that are in no catalog are left out of these streams: in distributed mode such an item's
attributes are learnt by whichever worker sees its event, and concurrent first sightings on two workers are
not serialised (docs/distributed.md, "Limits").
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, Producer

from freshrec.catalog import validate_items
from freshrec.config import Settings, load_settings
from freshrec.distributed.kafka import ensure_topics, producer_config
from freshrec.distributed.setup import open_engine
from freshrec.engine import Engine, items_record
from freshrec.views.registry import EMBEDDED_ONLY
from support import eventgen
from support.kafka_broker import KafkaBroker
from support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.heavy

DIM = 8
STRATEGIES = (
    "personalized",
    "session",
    "trending_for_you",
    "trending",
    "covisit",
    "similar_content",
    "hybrid",
)
ENV = {
    "FRESHREC_CLOCK": "event",
    "FRESHREC_EMBEDDINGS__MODEL": f"precomputed:{DIM}",
    "FRESHREC_CF__ENABLED": "false",
    "FRESHREC_KAFKA__SESSION_TIMEOUT_MS": "2000",
    "FRESHREC_KAFKA__PARTITIONS": "4",
    "FRESHREC_KAFKA__BATCH_SIZE": "200",
}


def stream(seed: int = 5) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A catalog with vectors and its events (late arrivals and re-sends included), catalog items only."""
    items, events = eventgen.generate(seed=seed, n_users=30, n_items=150, n_events=3000)
    catalog = [dict(i) for i in items]
    for n, item in enumerate(catalog):
        item["embedding"] = [math.sin((n + 1) * (d + 1) * 0.37) + 0.01 for d in range(DIM)]
    known = {i["item_id"] for i in catalog}
    return catalog, [dict(e) for e in events if e["item_id"] in known]


def settings_for(state: str | None = None, bootstrap: str | None = None) -> Settings:
    overrides: dict[str, Any] = {
        "clock": "event",
        "embeddings": {"model": f"precomputed:{DIM}"},
        "cf": {"enabled": False},
        "kafka": {"session_timeout_ms": 2000, "partitions": 4, "bootstrap": bootstrap},
    }
    if state is not None:
        overrides["state"] = state
    return load_settings(**overrides)


def embedded(items: list[dict[str, Any]], events: list[dict[str, Any]]) -> Engine:
    engine = Engine(settings_for())
    engine.upsert_items(items)
    for chunk in eventgen.chunks(events, 500):
        engine.ingest(chunk)
    return engine


# -- processes ------------------------------------------------------------------------------------------
LOGS: dict[int, Path] = {}


def freshrec(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A ``freshrec`` command in its own process; what it prints goes to a log file (see :func:`output`)."""
    log = Path(tempfile.mkstemp(prefix="freshrec-proc-", suffix=".log")[1])
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "freshrec.cli", *args],
            env={**os.environ, **ENV, **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    LOGS[proc.pid] = log
    return proc


def output(proc: subprocess.Popen[bytes]) -> str:
    log = LOGS.get(proc.pid)
    return log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log = LOGS.pop(proc.pid, None)
            if log is not None:
                log.unlink(missing_ok=True)


def start_worker(state: str, bootstrap: str) -> subprocess.Popen[bytes]:
    return freshrec("worker", "--state", state, "--kafka", bootstrap)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, procs: Sequence[Any] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for proc in procs:
            if proc.poll() is not None and proc.returncode not in (0, -signal.SIGKILL):
                raise AssertionError(f"a freshrec process exited with {proc.returncode}: {output(proc)}")
        time.sleep(0.05)
    logs = "\n---\n".join(output(p) for p in procs)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; process output:\n{logs}")


def produce(bootstrap: str, topic: str, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
    producer = Producer(producer_config(settings_for(bootstrap=bootstrap).kafka))
    for key, record in records:
        producer.produce(topic, orjson.dumps(record), key.encode())
    assert producer.flush(30) == 0


def applied(state_engine: Engine) -> int:
    return state_engine.total_applied()[0]


# -- comparison -----------------------------------------------------------------------------------------
def canonical(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def view_table(engine: Engine, name: str) -> list[str]:
    return sorted(
        orjson.dumps(canonical(r), option=orjson.OPT_SORT_KEYS).decode() for r in engine.view_rows(name)
    )


def differences(expected: Engine, actual: Engine, users: Sequence[str]) -> list[str]:
    problems: list[str] = []
    for name in expected.views:
        if name in EMBEDDED_ONLY and name not in actual.views:
            continue  # not kept by the Redis state (docs/extensions.md)
        want, got = view_table(expected, name), view_table(actual, name)
        if want != got:
            missing = sorted(set(want) - set(got))[:3]
            extra = sorted(set(got) - set(want))[:3]
            problems.append(
                f"view {name}: {len(want)} vs {len(got)} rows; missing {missing}; unexpected {extra}"
            )
    for user in users:
        for strategy in STRATEGIES:
            want_recs = [(r.item_id, round(r.score, 6)) for r in expected.recommend(user, strategy, k=20)]
            got_recs = [(r.item_id, round(r.score, 6)) for r in actual.recommend(user, strategy, k=20)]
            if want_recs != got_recs:
                problems.append(f"{strategy} for {user}: {want_recs[:5]} vs {got_recs[:5]}")
    return problems


@pytest.fixture
def servers() -> Iterator[tuple[RedisServer, KafkaBroker]]:
    with RedisServer() as redis, KafkaBroker() as broker:
        yield redis, broker


def load_catalog(state: str, bootstrap: str, items: list[dict[str, Any]], reader: Engine, procs: Any) -> None:
    kafka = settings_for(bootstrap=bootstrap).kafka
    prepared = validate_items(items)
    produce(bootstrap, kafka.items_topic, [(i.item_id, items_record([i], 1_700_000_000.0)) for i in prepared])
    wait_for(
        lambda: reader.sync_catalog() >= 0 and len(reader.catalog) == len(items), 60, "the catalog", procs
    )


def test_embedded_and_distributed_give_the_same_views_and_answers(
    servers: tuple[RedisServer, KafkaBroker],
) -> None:
    redis, broker = servers
    items, events = stream()
    expected = embedded(items, events)
    state = f"{redis.url}?prefix=same"
    settings = settings_for(state, broker.bootstrap)
    ensure_topics(settings.kafka)
    reader, _ = open_engine(settings)
    with processes() as procs:
        procs.extend(start_worker(state, broker.bootstrap) for _ in range(2))
        load_catalog(state, broker.bootstrap, items, reader, procs)
        produce(broker.bootstrap, settings.kafka.events_topic, [(e["user_id"], e) for e in events])
        unique = expected.applied_events
        wait_for(lambda: applied(reader) >= unique, 120, f"{unique} events applied", procs)
        time.sleep(0.5)  # nothing more may arrive: a double count would show now
        assert applied(reader) == unique
    actual, _ = open_engine(settings)
    assert actual.now() == expected.now()
    users = sorted({e["user_id"] for e in events})
    assert differences(expected, actual, users) == []


def test_a_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(
    servers: tuple[RedisServer, KafkaBroker],
) -> None:
    redis, broker = servers
    items, events = stream(seed=9)
    expected = embedded(items, events)
    state = f"{redis.url}?prefix=kill"
    settings = settings_for(state, broker.bootstrap)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with processes() as procs:
        procs.append(freshrec("serve", "--state", state, "--kafka", broker.bootstrap, "--port", str(port)))
        wait_for(lambda: _healthy(api), 60, "the API replica", procs)
        reader, _ = open_engine(settings)
        victim, survivor = start_worker(state, broker.bootstrap), start_worker(state, broker.bootstrap)
        procs.extend([victim, survivor])
        with httpx.Client(base_url=api, timeout=30) as client:
            for item in items:
                assert client.put(f"/v1/items/{item['item_id']}", json=item).status_code == 202
            load_wait = lambda: reader.sync_catalog() >= 0 and len(reader.catalog) == len(items)  # noqa: E731
            wait_for(load_wait, 60, "the catalog", procs)
            # both workers hold partitions of the events topic before the stream starts
            for proc in (victim, survivor):
                wait_for(partial(_assigned, proc), 60, "partitions assigned", procs)
            chunks = eventgen.chunks(events, 100)
            third = len(chunks) // 3
            for chunk in chunks[:third]:
                assert client.post("/v1/events", json=chunk).status_code == 202
            wait_for(lambda: applied(reader) > 0, 60, "the first events applied", procs)
            victim.send_signal(signal.SIGKILL)  # mid-stream: its uncommitted records must be re-delivered
            victim.wait()
            killed_at = applied(reader)
            for chunk in chunks[third:]:
                response = client.post("/v1/events", json=chunk)
                assert response.status_code == 202, response.text
            assert 0 < killed_at < expected.applied_events
            unique = expected.applied_events
            wait_for(lambda: applied(reader) >= unique, 120, f"{unique} events applied", [survivor])
            time.sleep(0.5)
            assert applied(reader) == unique
            users = sorted({e["user_id"] for e in events})
            actual, _ = open_engine(settings)
            assert differences(expected, actual, users) == []
            # the API replica answers the same
            for user in users[:5]:
                body = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
                want = [r.item_id for r in expected.recommend(user, "hybrid", k=10)]
                assert [i["item_id"] for i in body["items"]] == want


def post_all(client: httpx.Client, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """The catalog, then the events, through the API replica (each write answered 202: published)."""
    for item in items:
        assert client.put(f"/v1/items/{item['item_id']}", json=item).status_code == 202
    for chunk in eventgen.chunks(events, 500):
        assert client.post("/v1/events", json=chunk).status_code == 202


def _assigned(proc: subprocess.Popen[bytes]) -> bool:
    return "freshrec.events[" in output(proc)


def _text(raw: str | bytes | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_redis_outage_degrades_answers_instead_of_failing_and_recovers(
    servers: tuple[RedisServer, KafkaBroker],
) -> None:
    redis, broker = servers
    items, events = stream(seed=3)
    state = f"{redis.url}?prefix=outage"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with processes() as procs:
        procs.append(freshrec("serve", "--state", state, "--kafka", broker.bootstrap, "--port", str(port)))
        procs.append(start_worker(state, broker.bootstrap))
        wait_for(lambda: _healthy(api), 60, "the API replica", procs)
        with httpx.Client(base_url=api, timeout=30) as client:
            post_all(client, items, events)
            user = events[-1]["user_id"]
            wait_for(
                lambda: len(client.get(f"/v1/users/{user}/recommendations").json()["items"]) == 20,
                60,
                "recommendations",
                procs,
            )
            time.sleep(2.5)  # the replica refreshes its trending fallback every 2 s
            before = client.get(f"/v1/users/{user}/recommendations").json()["items"]

            redis.stop()
            known = client.get(f"/v1/users/{user}/recommendations")
            assert known.status_code == 200
            assert known.headers["x-freshrec-degraded"] == "last-known"
            assert known.json()["items"] == before
            stranger = client.get("/v1/users/someone-new/recommendations", params={"k": 5})
            assert stranger.status_code == 200
            assert stranger.headers["x-freshrec-degraded"] == "trending"
            assert len(stranger.json()["items"]) == 5
            profile = client.get(f"/v1/users/{user}/profile")
            assert profile.status_code == 503 and "unreachable" in profile.json()["error"]
            health = client.get("/health").json()
            assert health["status"] == "degraded" and health["state_reachable"] is False

            redis.start()  # an empty server (no persistence): the replica must simply go on
            wait_for(
                lambda: "x-freshrec-degraded" not in client.get(f"/v1/users/{user}/recommendations").headers,
                30,
                "recovery",
                procs,
            )
            assert client.get("/health").json()["status"] == "ok"
            assert client.post("/v1/events", json=events[:3]).status_code == 202


def test_records_that_cannot_be_applied_go_to_the_dead_letter_topic_with_the_reason(
    servers: tuple[RedisServer, KafkaBroker],
) -> None:
    redis, broker = servers
    state = f"{redis.url}?prefix=dlq"
    settings = settings_for(state, broker.bootstrap)
    kafka = settings.kafka
    good = {"event_id": "ok-1", "user_id": "u1", "item_id": "i1", "type": "view", "timestamp": 1_700_000_000}
    producer = Producer(producer_config(kafka))
    ensure_topics(kafka)
    producer.produce(kafka.events_topic, b"{not json", b"u1")
    producer.produce(kafka.events_topic, orjson.dumps({**good, "event_id": "bad-1", "type": "like"}), b"u1")
    producer.produce(kafka.events_topic, orjson.dumps(good), b"u1")
    producer.produce(kafka.items_topic, orjson.dumps({"op": "items", "items": [{"price": -1}]}), b"x")
    assert producer.flush(10) == 0
    reader, _ = open_engine(settings)
    with processes() as procs:
        procs.append(start_worker(state, broker.bootstrap))
        wait_for(lambda: applied(reader) == 1, 60, "the valid event applied", procs)
    assert reader.view_rows("user_history", "u1")[0]["event_id"] == "ok-1"

    consumer = Consumer(broker.consumer_config("dlq-reader"))
    consumer.subscribe([kafka.dead_letter_topic])
    letters: list[dict[str, str]] = []
    deadline = time.monotonic() + 30
    while len(letters) < 3 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        raw_headers = message.headers() or []
        pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        headers = {name: _text(raw) for name, raw in pairs}
        letters.append({"value": _text(message.value()), **headers})
    consumer.close()
    assert len(letters) == 3, letters
    by_value = {letter["value"]: letter for letter in letters}
    assert "not JSON" in by_value["{not json"]["error"]
    assert by_value["{not json"]["source"].startswith(f"{kafka.events_topic}:")
    unknown = next(v for k, v in by_value.items() if "bad-1" in k)
    assert "unknown event type 'like'" in unknown["error"]
    catalog = next(v for k, v in by_value.items() if '"op"' in k)
    assert "price" in catalog["error"] and "item_id" in catalog["error"]


def test_a_model_trained_elsewhere_reaches_the_replicas(servers: tuple[RedisServer, KafkaBroker]) -> None:
    redis, broker = servers
    items, events = stream(seed=4)
    state = f"{redis.url}?prefix=model"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with_cf = {"FRESHREC_CF__ENABLED": "true"}
    with processes() as procs:
        serve = ("serve", "--state", state, "--kafka", broker.bootstrap, "--port", str(port))
        procs.append(freshrec(*serve, env=with_cf))
        procs.append(start_worker(state, broker.bootstrap))
        wait_for(lambda: _healthy(api), 60, "the API replica", procs)
        with httpx.Client(base_url=api, timeout=30) as client:
            post_all(client, items, events)
            wait_for(lambda: client.get("/health").json()["applied_events"] > len(events) // 2, 60, "events")
            assert client.get("/v1/admin/models").json()["cf"]["model"] is None

            trainer = freshrec("train", "--state", state, env=with_cf)
            assert trainer.wait(timeout=120) == 0, output(trainer)

            def models() -> Any:
                return client.get("/v1/admin/models").json()["cf"]["model"]

            wait_for(lambda: models() is not None, 30, "the replica to load the model", procs)
            assert models()["version"] == 1 and models()["users"] > 0
            user = events[-1]["user_id"]
            recs = client.get(f"/v1/users/{user}/recommendations", params={"strategy": "cf", "k": 10})
            assert recs.status_code == 200 and len(recs.json()["items"]) == 10
