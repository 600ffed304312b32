"""A Tansu Kafka-protocol broker shared by the integration tests of a module (topics are per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.kafka_broker import KafkaBroker


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[KafkaBroker]:
    with KafkaBroker() as broker:
        yield broker
