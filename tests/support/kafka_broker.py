"""The Tansu launcher of the tests; it lives in the package because ``freshrec bench`` starts one too."""

from freshrec.bench.kafka_broker import KafkaBroker, KafkaBrokerError, tansu_binary

__all__ = ["KafkaBroker", "KafkaBrokerError", "tansu_binary"]
