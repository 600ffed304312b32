"""The Kafka side of distributed mode: client settings, topics, and a publisher that awaits the broker's ack.

Records are JSON. The events topic holds one event per record (SPEC §1 fields, keyed by ``user_id`` so one
user's events stay in order on one partition and are applied by one worker at a time); the items topic holds
catalog changes (``{"op": "items" | "delete_item", ...}``, the same records as the embedded log, keyed by
``item_id``); the dead-letter topic holds what a worker could not apply, with the reason in a header.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import orjson

from freshrec.config import KafkaSettings

try:
    from confluent_kafka import KafkaError, KafkaException, Message, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "distributed mode needs confluent-kafka and redis: pip install 'freshrec[distributed]'"
    ) from exc


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge a write in time; nothing is acknowledged to the caller."""


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    if not settings.bootstrap:
        raise ValueError("kafka.bootstrap is not set (--kafka HOST:PORT)")
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap, "client.id": "freshrec"}
    return {**config, **security_config(settings)}


def security_config(settings: KafkaSettings) -> dict[str, Any]:
    """librdkafka's security settings: SASL (PLAIN, SCRAM) credentials and TLS, when configured."""
    config: dict[str, Any] = {}
    protocol = settings.security_protocol
    if settings.sasl_username is not None:
        protocol = protocol or "SASL_PLAINTEXT"
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password
    if protocol is not None:
        config["security.protocol"] = protocol
    if settings.ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.ssl_ca_location)
    return config


def ensure_topics(settings: KafkaSettings, timeout: float = 15.0) -> None:
    """Create the events, items and dead-letter topics when they do not exist (existing ones are kept)."""
    admin = AdminClient(client_config(settings))
    have = set(admin.list_topics(timeout=timeout).topics)
    wanted = [settings.events_topic, settings.items_topic, settings.dead_letter_topic]
    missing = [NewTopic(t, num_partitions=settings.partitions) for t in wanted if t not in have]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {topic!r}: {exc}") from exc


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    return {
        **client_config(settings),
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",  # the Java client's placement: other producers agree on partitions
        "linger.ms": 1,
        "delivery.timeout.ms": settings.delivery_timeout_ms,
    }


def encode(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


class Publisher:
    """Publishes records and lets ``async`` callers wait until the broker acknowledged every one of them.

    A thread serves the producer's delivery callbacks, which resolve asyncio futures on the caller's loop.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.producer = Producer(producer_config(settings))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="freshrec-kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def publish(self, topic: str, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Send ``(key, record)`` pairs to ``topic``; return once the broker acknowledged all of them."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []

        def on_delivery(future: asyncio.Future[None]) -> Any:
            def done(error: KafkaError | None, message: Message) -> None:
                def resolve() -> None:
                    if future.done():
                        return
                    if error is not None:
                        future.set_exception(
                            BrokerUnavailable(f"the broker refused the write: {error.str()}")
                        )
                    else:
                        future.set_result(None)

                loop.call_soon_threadsafe(resolve)

            return done

        for key, record in records:
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)
            while True:
                try:
                    self.producer.produce(
                        topic, encode(record), key.encode(), on_delivery=on_delivery(future)
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    await asyncio.sleep(0.005)
        timeout = self.settings.delivery_timeout_ms / 1000.0 + 1.0
        try:
            await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except TimeoutError:
            raise BrokerUnavailable(
                f"the broker did not acknowledge the write within {timeout:g} s"
            ) from None

    def close(self) -> None:
        self.producer.flush(5.0)
        self._stop.set()
        self._poller.join(timeout=2.0)
