"""Interleavings of two workers that random kills reach only now and then, forced here at the exact moment.

A worker applies a run of events in a fenced transaction that watches the catalog change log. If another
worker commits a catalog change after that ``WATCH`` and before the event run reads the log, the event run
mirrors the change, applies its events and is refused at ``EXEC`` (the log moved); it starts again. The
second attempt must still know the change it mirrored in the first: forgetting it makes the worker treat the
item as one it has never heard of, publish an item "observed" in events (in stock, attributes from the
event) over the real one, and every replica then serves an out-of-stock item as recommendable.

The other worker's transaction is run at that point by a hook on this worker's catalog reads: real Valkey, a
real Tansu broker, the worker's own consumer loop; nothing is simulated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from freshrec.catalog import ItemIn
from freshrec.config import Settings, load_settings
from freshrec.distributed.catalog import ITEMS
from freshrec.distributed.kafka import ensure_topics, producer_config
from freshrec.distributed.setup import open_engine
from freshrec.distributed.worker import Worker
from support.kafka_broker import KafkaBroker
from support.redis_server import RedisServer

ITEM = {"item_id": "lamp-1", "category": "home", "brand": "lumo", "price": 80.0, "in_stock": False}
EVENT: dict[str, Any] = {
    "event_id": "ev-1",
    "user_id": "u-1",
    "item_id": "lamp-1",
    "type": "view",
    "timestamp": 1_700_000_000.0,
    "category": "home",
    "brand": "lumo",
    "price": 80.0,
}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def settings_for(redis: RedisServer, broker: KafkaBroker, name: str) -> Settings:
    return load_settings(
        clock="event",
        embeddings={"model": "none"},
        cf={"enabled": False},
        state=f"{redis.url}?prefix={name}",
        kafka={
            "bootstrap": broker.bootstrap,
            "partitions": 1,
            "session_timeout_ms": 2000,
            "group": f"{name}-group",
            "events_topic": f"{name}.events",
            "items_topic": f"{name}.items",
            "dead_letter_topic": f"{name}.dead",
        },
    )


def produce(settings: Settings, topic: str, key: str, record: dict[str, Any]) -> None:
    producer = Producer(producer_config(settings.kafka))
    producer.produce(topic, orjson.dumps(record), key.encode())
    assert producer.flush(15.0) == 0, "the broker did not acknowledge"


@contextmanager
def running(worker: Worker, until: Callable[[], bool], timeout: float = 60.0) -> Iterator[None]:
    """Run ``worker``'s consumer loop in a thread until ``until()`` holds after a batch (or ``timeout``)."""
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            worker.run(on_batch=lambda _: worker.stop() if until() else None)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)

    thread = threading.Thread(target=loop, name="worker-under-test", daemon=True)
    thread.start()
    try:
        yield
        thread.join(timeout)
    finally:
        worker.stop()
        thread.join(30.0)
    assert not failure, f"the worker failed: {failure[0]!r}"
    assert not thread.is_alive(), "the worker did not stop"


def test_a_catalog_change_mirrored_by_an_event_run_that_is_refused_is_not_forgotten(
    redis: RedisServer, kafka_broker: KafkaBroker
) -> None:
    settings = settings_for(redis, kafka_broker, "mirror")
    ensure_topics(settings.kafka)
    engine, shared = open_engine(settings)
    other, _ = open_engine(settings)  # a second worker's engine on the same state
    worker = Worker(settings, engine)

    # the hook: the first time the worker reads the catalog log inside a fenced event run (after its
    # WATCH), the other worker commits the upsert of the item the events name
    fenced, read_changes = worker.store.fenced, shared.changes
    inside: list[list[str]] = []
    upserted: list[float] = []

    @contextmanager
    def fenced_run(partitions: Any, **options: Any) -> Iterator[Any]:
        with fenced(partitions, **options) as fence:
            inside.append(list(partitions))
            try:
                yield fence
            finally:
                inside.pop()

    def changes() -> list[dict[str, Any]]:
        if inside and not upserted and all(p.startswith("mirror.events:") for p in inside[-1]):
            stamp = time.time()
            other.apply_items([ItemIn.model_validate(ITEM)], stamp, record_id="kafka:mirror.items:0:0")
            upserted.append(stamp)
        return read_changes()

    worker.store.fenced = fenced_run  # type: ignore[method-assign]
    shared.changes = changes  # type: ignore[method-assign]

    produce(settings, settings.kafka.events_topic, EVENT["user_id"], EVENT)
    with running(worker, lambda: worker.stats.events_applied > 0):
        pass
    assert upserted, "the event run never read the catalog inside its fence"
    assert worker.stats.conflicts >= 1, "the event run was not refused: the interleaving did not happen"

    reader, _ = open_engine(settings)
    assert reader.total_applied()[0] == 1
    stored = orjson.loads(reader.store.docs(ITEMS)["lamp-1"])["item"]
    assert (stored["observed"], stored["in_stock"]) == (False, False), stored
    item = reader.catalog.items["lamp-1"]
    assert (item.observed, item.in_stock, item.category) == (False, False, "home")
    # the out-of-stock item is recommended to nobody (the replica's answer, read from the shared state)
    recs = reader.recommend("u-1", "personalized", k=10)
    assert "lamp-1" not in [r.item_id for r in recs]
