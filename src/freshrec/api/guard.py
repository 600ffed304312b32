"""The checks every guarded request passes, in one object built once per app from ``server`` settings.

:meth:`Guard.admit` is what the route dependencies (``freshrec.api.deps``), the GraphQL fields and a raw
ASGI fast path call: the query-string limit, the rate limit (per key, else per client address), then the
role. Building it reads the keys file, so a malformed file fails at start, not on the first request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from freshrec.api.auth import Key, KeyRing, Role, presented_key
from freshrec.api.limits import RateLimiter, check_query, too_many_requests
from freshrec.config import ServerSettings


class Guard:
    """Keys, rate limit and query limit of one server."""

    __slots__ = ("limiter", "max_query_bytes", "metrics_role", "ring")

    def __init__(self, ring: KeyRing, server: ServerSettings) -> None:
        limits = server.limits
        self.ring = ring
        self.max_query_bytes = limits.max_query_bytes
        self.limiter = (
            RateLimiter(limits.rate_per_second, limits.rate_burst, limits.rate_clients)
            if limits.rate_per_second > 0
            else None
        )
        self.metrics_role = None if server.metrics_role == "open" else Role(server.metrics_role)

    @classmethod
    def from_settings(cls, server: ServerSettings) -> Guard:
        return cls(KeyRing.from_settings(server), server)

    def admit(
        self, headers: Mapping[str, str], client: str | None, query_string: bytes, needed: Role | None
    ) -> Key | None:
        """Raise 414, 429, 401 or 403 unless the request may go on; returns the key it came with."""
        if len(query_string) > self.max_query_bytes:
            check_query(query_string, self.max_query_bytes)
        presented = presented_key(headers)
        key = self.ring.identify(presented)
        if self.limiter is not None:
            who = key.bucket if key is not None else (client or "unknown")
            wait = self.limiter.check(who)
            if wait is not None:
                raise too_many_requests(wait, who)
        if needed is not None:
            self.ring.require(key, presented, needed)
        return key


def guard_of(state: Any, server: ServerSettings) -> Guard:
    """The app's guard (``app.state.guard``), built on first use when the app did not install one."""
    try:
        found: Guard = state.guard
    except AttributeError:
        found = state.guard = Guard.from_settings(server)
    return found


def exposure_warning(host: str, ring: KeyRing) -> str | None:
    """A warning when a server without any key listens on an address other hosts can reach."""
    if ring.keys:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (
        f"serving on {host} without API keys: anyone who can reach this port can post events, change the "
        "catalog and run experiments; configure keys (--api-keys FILE, docs/security.md)"
    )
