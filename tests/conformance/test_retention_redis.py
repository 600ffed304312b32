"""``retention.user_ttl_days`` on the Redis state: every key of a user's views expires that long after the
user's last write (Redis key expiry), while item state stays (docs/state.md, "Bounded state")."""

from __future__ import annotations

import time

import redis

from freshrec.config import load_settings
from freshrec.engine import Engine
from support.redis_server import RedisServer

T0 = 1_700_000_000.0
TTL_SECONDS = 3.0
ITEMS = [{"item_id": f"i{n}", "category": f"c{n % 3}", "brand": "b", "price": 20.0 * n} for n in range(6)]


def events(user: str, ts: float) -> list[dict[str, object]]:
    kinds = ("view", "click", "purchase", "view", "purchase")
    return [
        {"user_id": user, "item_id": f"i{n}", "type": kind, "timestamp": ts + n}
        for n, kind in enumerate(kinds)
    ]


def test_a_users_keys_expire_after_the_ttl_and_item_state_stays(redis_server: RedisServer) -> None:
    prefix = "retention-ttl"
    settings = load_settings(
        state=f"{redis_server.url}?prefix={prefix}",
        clock="event",
        embeddings={"model": "none"},
        cf={"enabled": False},
        ranker={"enabled": False},
        retention={"user_ttl_days": TTL_SECONDS / 86_400},
    )
    engine = Engine(settings)
    engine.upsert_items(ITEMS)
    engine.ingest(events("idle", T0))
    client = redis.Redis.from_url(redis_server.url)

    def keys_of(entity: str) -> list[str]:
        """Every key of ``entity`` (its hash tag ends with ``|entity``)."""
        names = [n.decode() for n in client.scan_iter(match=f"{prefix}:*", count=1000)]
        return [n for n in names if f"|{entity}}}:" in n]

    idle = keys_of("idle")
    assert len(idle) >= 8, idle  # profile, brands, tiers, items, history, purchases, co-visit timeline ...
    assert all(0 < client.pttl(k) <= TTL_SECONDS * 1000 for k in idle), {k: client.pttl(k) for k in idle}
    popular = [n.decode() for n in client.scan_iter(match=f"{prefix}:*item_popularity*", count=1000)]
    assert popular and all(client.pttl(k) == -1 for k in popular)

    time.sleep(1.0)
    engine.ingest(events("active", T0 + 60))
    active = keys_of("active")
    assert min(client.pttl(k) for k in active) > max(client.pttl(k) for k in keys_of("idle"))

    deadline = time.monotonic() + 30
    while keys_of("idle") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not keys_of("idle")
    assert not engine.profile("idle")["known"]
    assert engine.purchased_items("idle") == set()
    assert not engine.view_rows("user_category_profile", "idle")
    assert engine.profile("active")["known"]
    counts = {r["item_id"]: r["purchase_count"] for r in engine.view_rows("item_popularity")}
    assert counts["i2"] == 2  # both users' purchases: the aggregate keeps the forgotten user's
