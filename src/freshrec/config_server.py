"""Settings of the processes that face a network: the HTTP server (keys, limits) and the Kafka clients.

Kept beside :mod:`freshrec.config` (which re-exports them) so that each settings module stays short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LimitSettings(BaseModel):
    """What one request, one client and the whole server may ask for (``server.limits``).

    Every limit answers with a 4xx status and a message naming the limit and its setting; the event and
    item field limits (lengths of ids and texts, events per request) are in ``events`` and the item schema.
    """

    model_config = ConfigDict(extra="forbid")

    max_query_bytes: int = Field(
        4096, ge=256, description="Longest query string (the part after `?`); longer is answered 414."
    )
    max_items_batch: int = Field(10_000, ge=1, description="Most items in one `POST /v1/items` (else 413).")
    max_items_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest body of an item write (else 413)."
    )
    max_graphql_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest `/graphql` request body (else 413)."
    )
    max_connections: int | None = Field(
        1000,
        ge=1,
        description="Most connections and requests in flight at once (uvicorn's `limit_concurrency`); "
        "beyond it new requests get 503. None: unlimited.",
    )
    rate_per_second: float = Field(
        0.0,
        ge=0,
        description="Requests per second per API key (per client address for requests without a key), a "
        "token bucket; beyond it 429 with `Retry-After`. 0: no rate limit.",
    )
    rate_burst: int = Field(
        100, ge=1, description="Requests a key (or address) may send at once before the rate applies."
    )
    rate_clients: int = Field(
        100_000,
        ge=1,
        description="Most keys and addresses tracked at once; full buckets (idle clients) are dropped first.",
    )


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: Path | None = Field(
        None,
        description="A JSON or TOML file of API keys, each with a role (read, write, admin) and a name "
        "(docs/security.md); `freshrec serve --api-keys FILE`.",
    )
    write_key: str | None = Field(None, description="When set, writes need `Authorization: Bearer <key>`.")
    read_key: str | None = Field(None, description="When set, reads need `Authorization: Bearer <key>`.")
    admin_key: str | None = Field(
        None, description="When set, admin routes (experiments, retraining) need it (else the write key)."
    )
    metrics_role: Literal["open", "read", "write", "admin"] = Field(
        "open", description="The role `/metrics` needs when keys are configured ('open': none)."
    )
    limits: LimitSettings = Field(default_factory=LimitSettings)


class KafkaSettings(BaseModel):
    """Distributed mode (SPEC §0): the event log on a Kafka-protocol broker, consumed by `freshrec worker`."""

    model_config = ConfigDict(extra="forbid")

    bootstrap: str | None = Field(
        None, description="Broker list `host:port[,...]`; set = `serve` publishes writes to Kafka."
    )
    events_topic: str = Field("freshrec.events", min_length=1, description="Events, keyed by user_id.")
    items_topic: str = Field("freshrec.items", min_length=1, description="Catalog changes, keyed by item_id.")
    dead_letter_topic: str = Field(
        "freshrec.dead-letter", min_length=1, description="Records a worker could not apply, with the reason."
    )
    group: str = Field("freshrec-workers", min_length=1, description="Consumer group of the workers.")
    partitions: int = Field(8, ge=1, description="Partitions of topics freshrec creates (when absent).")
    batch_size: int = Field(1000, ge=1, description="Most records a worker applies in one transaction.")
    session_timeout_ms: int = Field(10_000, ge=1000, description="A dead worker's partitions move after it.")
    delivery_timeout_ms: int = Field(10_000, ge=100, description="How long `serve` waits for the broker.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = Field(
        None, description="librdkafka `security.protocol` (default: SASL_PLAINTEXT when a SASL user is set)."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism used with `sasl_username`."
    )
    sasl_username: str | None = Field(None, description="SASL user; set = the clients authenticate.")
    sasl_password: str | None = Field(None, description="SASL password of `sasl_username`.")
    ssl_ca_location: Path | None = Field(None, description="CA certificate file (SSL, SASL_SSL).")

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if (self.sasl_username is None) != (self.sasl_password is None):
            raise ValueError("kafka.sasl_username and kafka.sasl_password are set together")
        if self.sasl_username is None and self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_username")
        if self.sasl_username is not None and self.security_protocol in ("PLAINTEXT", "SSL"):
            raise ValueError(
                f"kafka.sasl_username is set but kafka.security_protocol {self.security_protocol} sends no "
                "SASL credentials: use SASL_PLAINTEXT or SASL_SSL"
            )
        return self


def redacted(url: str) -> str:
    """``url`` with its password (``redis://user:secret@host``) replaced by ``***``, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
