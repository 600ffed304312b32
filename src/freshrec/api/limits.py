"""Request limits as plain functions a route dependency (or a raw ASGI fast path) calls.

* :func:`check_query`: the query string's length (414);
* :class:`RateLimiter`: a token bucket per API key, or per client address for requests without a valid
  key; :meth:`RateLimiter.check` costs a clock read and a dict lookup, and says how long to wait (429 with
  ``Retry-After``) when the bucket is empty.

Body sizes are checked while the body is read (:func:`freshrec.api.deps.read_body`, 413), events and items
per request by the validators (413), field lengths by the event and item schemas (422), ``k`` by the engine
(``strategies.max_k``, 422) and connections in flight by uvicorn (``limit_concurrency``, 503).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from freshrec.errors import InvalidInput


def check_query(query_string: bytes, limit: int) -> None:
    """Refuse (414) a query string longer than ``limit`` bytes."""
    if len(query_string) > limit:
        raise InvalidInput(
            f"query string is {len(query_string)} bytes; "
            f"the limit is {limit} (server.limits.max_query_bytes)",
            status=414,
        )


def too_many_requests(retry_after: float, who: str) -> InvalidInput:
    """The 429 of a client whose bucket is empty; ``Retry-After`` in whole seconds (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    what = "this API key" if who.startswith("key:") else "this client address"
    return InvalidInput(
        f"too many requests from {what}: retry after {seconds} s (server.limits.rate_per_second)",
        status=429,
        headers={"Retry-After": str(seconds)},
    )


class RateLimiter:
    """Token buckets: ``rate`` requests per second, at most ``burst`` at once, per client.

    Each bucket is a two-element list ``[tokens, last seen]`` updated in place. At most ``capacity``
    buckets are kept: when a new client would pass it, full buckets (clients idle long enough to have
    their whole burst back, so forgetting them changes nothing) are dropped, then the longest idle half.
    """

    __slots__ = ("_buckets", "_clock", "burst", "capacity", "rate")

    def __init__(
        self, rate: float, burst: int, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = float(burst)
        self.capacity = capacity
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, who: str) -> float | None:
        """Take one token from ``who``'s bucket: None if there was one, else the seconds until there is."""
        now = self._clock()
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) >= self.capacity:
                self._prune(now)
            self._buckets[who] = [self.burst - 1.0, now]
            return None
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        tokens = min(tokens, self.burst)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        buckets = self._buckets
        full = [
            who for who, (tokens, seen) in buckets.items() if tokens + (now - seen) * self.rate >= self.burst
        ]
        for who in full:
            del buckets[who]
        if len(buckets) >= self.capacity:
            by_age = sorted(buckets, key=lambda who: buckets[who][1])
            for who in by_age[: max(1, len(by_age) // 2)]:
                del buckets[who]
