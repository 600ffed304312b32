"""The worker and the replicas authenticate to Valkey (an ACL user) and to Kafka (SASL) when configured.

Valkey: a real server whose default user is disabled and whose only user is an ACL user with a password;
the engine a worker or replica opens from ``redis://user:password@host:port/0`` applies and reads events,
and the same URL with a wrong password (or none) is refused at open, the message naming the URL without
its password. Kafka: the Tansu broker of the tests does not offer SASL/PLAIN, so what is checked is the
mapping of ``kafka.sasl_*`` onto the librdkafka configuration every client (producer, consumer, admin) is
built from, and the settings' own consistency checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from pydantic import ValidationError

from freshrec.cli import main
from freshrec.config import KafkaSettings, load_settings
from freshrec.config_server import redacted
from freshrec.distributed.kafka import client_config, producer_config
from freshrec.distributed.setup import open_engine
from freshrec.distributed.worker import consumer_config
from support.redis_server import RedisServer

PASSWORD = "valkey-acl-password-42"


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        setup = redis.Redis(port=server.port)
        setup.acl_setuser(
            "freshrec",
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        setup.acl_setuser("default", enabled=False)
        setup.close()
        yield server


def url(server: RedisServer, user: str = "freshrec", password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0?prefix=acl"


def test_the_default_user_is_really_off(acl_server: RedisServer) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_server.port).ping()


def test_an_engine_on_valkey_with_an_acl_user_applies_and_reads(acl_server: RedisServer) -> None:
    settings = load_settings(
        state=url(acl_server), embeddings={"model": "none"}, cf={"enabled": False}, clock="event"
    )
    engine, _ = open_engine(settings)
    engine.upsert_items([{"item_id": "a", "category": "books"}, {"item_id": "b", "category": "garden"}])
    engine.ingest(
        [
            {"user_id": "u1", "item_id": "a", "type": "purchase", "timestamp": 1_700_000_000},
            {"user_id": "u1", "item_id": "b", "type": "view", "timestamp": 1_700_000_010},
        ]
    )
    rows = {row["category"]: row for row in engine.view_rows("user_category_profile", "u1")}
    assert set(rows) == {"books", "garden"}
    # what the worker wrote is in Valkey, under the ACL user's connection
    check = redis.Redis(port=acl_server.port, username="freshrec", password=PASSWORD)
    assert any(key.startswith(b"acl:") for key in check.scan_iter(count=1000))
    check.close()


@pytest.mark.parametrize(("user", "password"), [("freshrec", "wrong"), ("nobody", PASSWORD)])
def test_wrong_credentials_are_refused_at_open(acl_server: RedisServer, user: str, password: str) -> None:
    settings = load_settings(state=url(acl_server, user, password), embeddings={"model": "none"})
    with pytest.raises(redis.AuthenticationError):
        open_engine(settings)


def test_the_worker_command_says_the_state_refused_without_printing_the_password(
    acl_server: RedisServer,
) -> None:
    bad = url(acl_server, password="not-the-password")
    result = CliRunner().invoke(main, ["worker", "--kafka", "127.0.0.1:1", "--state", bad])
    assert result.exit_code == 1
    assert "cannot open the state redis://freshrec:***@127.0.0.1" in result.output
    assert "AuthenticationError" in result.output
    assert "not-the-password" not in result.output


def test_urls_are_redacted_in_messages() -> None:
    assert redacted("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"
    assert redacted("redis://:secret@h:1/0") == "redis://:***@h:1/0"
    assert redacted("redis://h:1/0") == "redis://h:1/0"
    assert redacted("memory://") == "memory://"


def test_sasl_settings_reach_every_kafka_client() -> None:
    kafka = KafkaSettings(bootstrap="broker:9092", sasl_username="svc", sasl_password="pw")
    expected = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "svc",
        "sasl.password": "pw",
    }
    settings = load_settings(kafka=kafka.model_dump())
    for config in (client_config(kafka), producer_config(kafka), consumer_config(settings)):
        assert {k: config[k] for k in expected} == expected
    tls = KafkaSettings(
        bootstrap="b:9093",
        sasl_username="svc",
        sasl_password="pw",
        sasl_mechanism="SCRAM-SHA-512",
        security_protocol="SASL_SSL",
        ssl_ca_location="/etc/ssl/ca.pem",
    )
    config = client_config(tls)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["ssl.ca.location"] == "/etc/ssl/ca.pem"
    plain = client_config(KafkaSettings(bootstrap="b:9092"))
    assert not any(key.startswith(("sasl.", "security.")) for key in plain)


def test_librdkafka_accepts_the_sasl_configuration() -> None:
    """The mapped keys are real librdkafka properties: a producer is built from them (no broker needed)."""
    from confluent_kafka import Producer

    kafka = KafkaSettings(bootstrap="127.0.0.1:1", sasl_username="svc", sasl_password="pw")
    producer = Producer(producer_config(kafka))
    assert producer.flush(0) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sasl_username": "svc"}, "set together"),
        ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_username"),
        ({"sasl_username": "svc", "sasl_password": "pw", "security_protocol": "PLAINTEXT"}, "sends no SASL"),
    ],
)
def test_half_configured_sasl_is_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings.model_validate({"bootstrap": "b:9092", **fields})
