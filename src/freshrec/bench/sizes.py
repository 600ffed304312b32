"""Sizes of the benchmark steps: ``full`` (SPEC §9), ``quick`` (minutes) and ``tiny`` (the smoke test)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    grid: tuple[tuple[int, int], ...]  # (users, items) points of the ingestion scaling table
    warm_per_user: int  # events every user has before the measured ones
    measured: int  # events applied and timed at each point
    serve: tuple[int, int]  # (users, items) of the served state: the last grid point is built for it
    rates: tuple[float, ...]  # open-loop request rates
    rate_seconds: float  # duration of each open-loop run
    throughput_seconds: float
    probes: int  # freshness probes
    redis_users: int
    redis_measured: int
    alt_users: int  # the SQL and stream-processor comparisons
    alt_items: int
    alt_requests: int


FULL = Sizes(
    name="full",
    grid=((10_000, 10_000), (10_000, 100_000), (100_000, 100_000), (1_000_000, 100_000)),
    warm_per_user=3,
    measured=100_000,
    serve=(1_000_000, 100_000),
    rates=(500, 1000, 2000),
    rate_seconds=10.0,
    throughput_seconds=5.0,
    probes=500,
    redis_users=10_000,
    redis_measured=5_000,
    alt_users=10_000,
    alt_items=10_000,
    alt_requests=300,
)
QUICK = Sizes(
    name="quick",
    grid=((10_000, 10_000), (10_000, 50_000), (100_000, 50_000)),
    warm_per_user=3,
    measured=30_000,
    serve=(100_000, 50_000),
    rates=(500, 1000, 2000),
    rate_seconds=3.0,
    throughput_seconds=2.0,
    probes=200,
    redis_users=2_000,
    redis_measured=2_000,
    alt_users=3_000,
    alt_items=3_000,
    alt_requests=100,
)
TINY = Sizes(
    name="tiny",
    grid=((300, 200), (600, 400)),
    warm_per_user=2,
    measured=1_000,
    serve=(600, 400),
    rates=(500, 1000, 2000),
    rate_seconds=0.3,
    throughput_seconds=0.3,
    probes=10,
    redis_users=100,
    redis_measured=200,
    alt_users=200,
    alt_items=200,
    alt_requests=10,
)
PRESETS = {s.name: s for s in (FULL, QUICK, TINY)}
