"""The Kafka test broker (Tansu) with confluent-kafka: topics, keyed produce, group consumption, commits."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition, murmur2

from support.kafka_broker import KafkaBroker

#: (partition, offset, key, value)
Record = tuple[int, int, bytes, bytes]
# A short session makes Tansu answer JoinGroup after ~1 s instead of ~3 s; fine for a single consumer.
QUICK_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def produce_keyed(broker: KafkaBroker, topic: str, count: int, keys: int) -> list[Record]:
    """``count`` messages over ``keys`` keys; what the delivery reports (acks=all) say was written."""
    delivered: list[Record] = []
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failed.append(error)
            return
        partition, offset, key, value = message.partition(), message.offset(), message.key(), message.value()
        assert partition is not None and offset is not None and key is not None and value is not None
        delivered.append((partition, offset, key, value))

    producer = Producer(broker.producer_config())
    for i in range(count):
        producer.produce(topic, key=f"user-{i % keys}", value=f"event-{i}", on_delivery=on_delivery)
    assert producer.flush(10.0) == 0, "messages still unacknowledged after 10 s"
    assert not failed, failed
    assert len(delivered) == count
    return delivered


@contextmanager
def group_consumer(broker: KafkaBroker, group: str, topic: str) -> Iterator[Consumer]:
    consumer = Consumer(broker.consumer_config(group, QUICK_GROUP))
    try:
        consumer.subscribe([topic])
        yield consumer
    finally:
        consumer.close()


def consume(consumer: Consumer, count: int, timeout: float = 20.0) -> list[Record]:
    """Exactly ``count`` records (fails if they do not arrive within ``timeout`` seconds)."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(records)} of {count} messages within {timeout} s"
        message = consumer.poll(min(remaining, 0.5))
        if message is None:
            continue
        if (error := message.error()) is not None:
            raise KafkaException(error)
        partition, offset, key, value = message.partition(), message.offset(), message.key(), message.value()
        assert partition is not None and offset is not None and key is not None and value is not None
        records.append((partition, offset, key, value))
    return records


def test_topic_is_created_with_the_partitions_asked_for(kafka_broker: KafkaBroker) -> None:
    topic = unique("events")
    assert kafka_broker.partitions(topic) == 0
    kafka_broker.create_topic(topic, partitions=4)
    assert kafka_broker.partitions(topic) == 4
    with pytest.raises(KafkaException) as again:
        kafka_broker.create_topic(topic, partitions=4)
    assert again.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_keyed_messages_land_in_their_partition_and_a_group_consumes_them_all(
    kafka_broker: KafkaBroker,
) -> None:
    topic = unique("events")
    kafka_broker.create_topic(topic, partitions=4)
    delivered = produce_keyed(kafka_broker, topic, count=200, keys=20)

    # one partition per key, the Java client's (murmur2) choice
    for partition, _, key, _ in delivered:
        assert partition == murmur2(key, 4), key
    assert {p for p, *_ in delivered} == {0, 1, 2, 3}

    with group_consumer(kafka_broker, unique("group"), topic) as consumer:
        received = consume(consumer, len(delivered))
        assert {tp.partition for tp in consumer.assignment()} == {0, 1, 2, 3}
    assert sorted(received) == sorted(delivered)


def test_a_new_group_member_resumes_after_the_committed_offsets(kafka_broker: KafkaBroker) -> None:
    topic, group = unique("events"), unique("group")
    kafka_broker.create_topic(topic, partitions=4)
    delivered = produce_keyed(kafka_broker, topic, count=80, keys=16)

    with group_consumer(kafka_broker, group, topic) as first:
        processed = consume(first, 40)  # it may have fetched more: only these 40 are committed
        next_offsets: dict[int, int] = {}
        for partition, offset, _, _ in processed:
            next_offsets[partition] = max(next_offsets.get(partition, 0), offset + 1)
        committed = first.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in next_offsets.items()], asynchronous=False
        )
        assert all(tp.error is None for tp in committed), committed

    with group_consumer(kafka_broker, group, topic) as second:
        stored = second.committed([TopicPartition(topic, p) for p in range(4)], timeout=10.0)
        assert {tp.partition: tp.offset for tp in stored if tp.offset >= 0} == next_offsets
        rest = consume(second, len(delivered) - len(processed))
        assert second.poll(0.5) is None, "more messages than were left uncommitted"

    assert sorted(processed + rest) == sorted(delivered)  # none lost, none twice
    for partition, offset, _, _ in rest:
        assert offset >= next_offsets.get(partition, 0)
