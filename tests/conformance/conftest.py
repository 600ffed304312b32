"""Fixtures of the conformance suite: a Valkey server for the ``redis`` back end, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``valkey-server`` on a free loopback port, stopped by its PID at the end of the session."""
    with RedisServer() as server:
        yield server
