"""Bounded state: forgotten users come back fresh, the limits hold under churn, evictions are counted, and
forgetting survives a restart (docs/state.md, "Bounded state")."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from freshrec.api import create_app
from freshrec.config import load_settings
from freshrec.engine import Engine
from freshrec.storage.datadir import DataDir

DAY = 86_400.0
T0 = 1_700_000_000.0
USER_VIEWS = (
    "user_category_profile",
    "user_category_affinity",
    "user_brand_profile",
    "user_price_sensitivity",
    "user_recent_activity",
    "user_history",
    "user_items",
    "user_price_tier_drift",
)
ITEMS = [
    {"item_id": f"i{n}", "category": f"c{n % 5}", "brand": f"b{n % 3}", "price": 10.0 + 40 * (n % 4)}
    for n in range(40)
]


class Records:
    """A journal that keeps what it is given (the engine journals forgets before applying them)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records.extend(dict(r) for r in records)

    def forgets(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["op"] == "forget_users"]


def engine_with(**retention: Any) -> Engine:
    settings = load_settings(clock="event", embeddings={"model": "none"}, retention=retention)
    engine = Engine.in_memory(settings)
    engine.upsert_items(ITEMS)
    return engine


def event(user: str, item: int, ts: float, kind: str = "view", **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": f"i{item}", "type": kind, "timestamp": ts, **extra}


def users_stream(users: range, ts: float, per_user: int = 4) -> list[dict[str, Any]]:
    """``per_user`` events (views, a click, a purchase) of every user, one second apart per user."""
    kinds = ("view", "click", "view", "purchase")
    return [
        event(f"u{u}", (u * 7 + k) % len(ITEMS), ts + u + k / 10, kinds[k % len(kinds)])
        for u in users
        for k in range(per_user)
    ]


def user_rows(engine: Engine, user: str) -> dict[str, list[dict[str, Any]]]:
    rows = {view: engine.view_rows(view, user) for view in USER_VIEWS}
    for history in rows["user_history"]:
        history.pop("event_id")
    return rows


def test_a_forgotten_user_who_comes_back_starts_fresh() -> None:
    old = [
        event("u", 1, T0, "view"),
        event("u", 2, T0 + 60, "purchase"),
        event("u", 3, T0 + 120, "click", dwell_seconds=5.0),
    ]
    clock_mover = [event("other", 5, T0 + 3 * DAY)]
    back = [event("u", 7, T0 + 3 * DAY + 10, "view"), event("u", 8, T0 + 3 * DAY + 20, "purchase")]
    bounded = engine_with(user_ttl_days=1.0, sweep_every_seconds=0)
    for batch in (old, clock_mover):
        bounded.ingest(batch)
    assert bounded.stats()["users_evicted"]["ttl"] == 1
    assert not bounded.profile("u")["known"]
    assert all(not rows for rows in user_rows(bounded, "u").values())
    bounded.ingest(back)
    # the same events, u's old ones by another user: the aggregates (popularity, co-visits) are alike
    fresh = engine_with()
    for batch in ([{**e, "user_id": "u-before"} for e in old], clock_mover, back):
        fresh.ingest(batch)
    assert user_rows(bounded, "u") == user_rows(fresh, "u")
    assert bounded.purchased_items("u") == {"i8"}
    assert bounded.profile("u") == fresh.profile("u")
    for strategy in ("personalized", "session", "hybrid", "covisit", "trending_for_you"):
        got = [(r.item_id, r.score) for r in bounded.recommend("u", strategy, k=10)]
        assert got == [(r.item_id, r.score) for r in fresh.recommend("u", strategy, k=10)], strategy


def test_max_users_forgets_the_least_recently_active_first() -> None:
    engine = engine_with(max_users=50)
    journal = Records()
    engine.journal = journal
    newest: dict[str, float] = {}  # the users held, by their newest event time
    checked = 0
    for start in range(0, 300, 20):
        batch = users_stream(range(start, start + 20), T0 + start * 100)
        engine.ingest(batch)
        for e in batch:
            newest[e["user_id"]] = max(newest.get(e["user_id"], 0.0), e["timestamp"])
        assert engine.stats()["users"] <= 50
        for record in journal.forgets()[checked:]:
            victims = set(record["user_ids"])
            kept = set(newest) - victims
            assert len(kept) == int(50 * 0.95), start
            assert max(newest[u] for u in victims) <= min(newest[u] for u in kept), start
            for user in victims:
                del newest[user]
        checked = len(journal.forgets())
    assert checked > 1
    assert {u for u in (f"u{n}" for n in range(300)) if engine.profile(u)["known"]} == set(newest)
    assert engine.stats()["users"] == len(newest)
    assert engine.stats()["users_evicted"]["max_users"] == 300 - len(newest)


def test_memory_stays_flat_when_ten_times_max_users_pass_through() -> None:
    cap = 400

    def run(**retention: Any) -> tuple[Engine, list[int]]:
        engine = engine_with(**retention)
        allocated = []
        for start in range(0, 10 * cap, 100):
            engine.ingest(users_stream(range(start, start + 100), T0 + start * 10, per_user=6))
            allocated.append(sum(v.nbytes() for v in engine.columnar_views()))
        return engine, allocated

    bounded, sizes = run(max_users=cap)
    unbounded, unbounded_sizes = run()
    at_twice = sizes[2 * cap // 100 - 1]
    assert sizes[-1] <= 1.25 * at_twice, sizes
    assert unbounded_sizes[-1] > 3 * sizes[-1], (unbounded_sizes[-1], sizes[-1])
    assert len(bounded.vocabulary.users) <= cap + 100  # user ids are reused, not grown
    assert bounded.stats()["state_bytes"] < unbounded.stats()["state_bytes"] / 4


def test_memory_budget_bounds_the_state_bytes() -> None:
    budget_mb = 0.25
    engine = engine_with(memory_budget_mb=budget_mb)
    for start in range(0, 4000, 100):
        engine.ingest(users_stream(range(start, start + 100), T0 + start * 10, per_user=6))
        assert engine.stats()["state_bytes"] <= budget_mb * 1024 * 1024
    stats = engine.stats()
    assert stats["users_evicted"]["memory"] == 4000 - stats["users"]
    assert 10 < stats["users"] < 4000
    assert stats["state_bytes"] > 0.5 * budget_mb * 1024 * 1024  # forgets down to the budget, not beyond


def test_evictions_and_users_held_are_in_metrics() -> None:
    engine = engine_with(max_users=30, user_ttl_days=1.0, sweep_every_seconds=0)

    async def scenario() -> str:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            for start in range(0, 100, 10):
                body = users_stream(range(start, start + 10), T0 + start * 10)
                assert (await client.post("/v1/events", json=body)).status_code == 202
            # two days later: every earlier user is idle beyond the TTL
            late = users_stream(range(1000, 1005), T0 + 2 * DAY)
            assert (await client.post("/v1/events", json=late)).status_code == 202
            response = await client.get("/metrics")
            assert response.status_code == 200
            return response.text

    text = asyncio.run(scenario())
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("freshrec_users", "freshrec_state_bytes"))
    }
    held = engine.stats()["users"]
    assert held == 5
    assert values["freshrec_users"] == held
    max_users = values['freshrec_users_evicted_total{reason="max_users"}']
    ttl = values['freshrec_users_evicted_total{reason="ttl"}']
    assert max_users > 0 and ttl > 0
    assert max_users + ttl == 105 - held
    assert values["freshrec_state_bytes"] == engine.stats()["state_bytes"]


def test_forgetting_is_journaled_and_replayed_after_a_crash(tmp_path: Path) -> None:
    settings = load_settings(
        clock="event",
        embeddings={"model": "none"},
        cf={"enabled": False},
        ranker={"enabled": False},
        retention={"max_users": 40, "user_ttl_days": 1.0, "sweep_every_seconds": 0},
    )
    data = DataDir(tmp_path / "data", settings)
    engine = data.open_engine()
    engine.upsert_items(ITEMS)
    for start in range(0, 200, 25):
        engine.ingest(users_stream(range(start, start + 25), T0 + start * 600))
    engine.ingest(users_stream(range(500, 510), T0 + 3 * DAY))
    users = [f"u{u}" for u in [*range(200), *range(500, 510)]]
    before = {u: user_rows(engine, u) for u in users}
    stats = engine.stats()
    assert stats["users_evicted"]["ttl"] > 0 and stats["users_evicted"]["max_users"] > 0
    data.close(snapshot=False)  # no snapshot: the whole log, forgets included, is replayed
    again = DataDir(tmp_path / "data", settings)
    restored = again.open_engine()
    try:
        assert {u: user_rows(restored, u) for u in users} == before
        assert restored.stats()["users_evicted"] == stats["users_evicted"]
        assert restored.stats()["users"] == stats["users"]
    finally:
        again.close(snapshot=False)


def test_forget_users_on_request() -> None:
    engine = engine_with()
    engine.ingest(users_stream(range(3), T0))
    assert engine.forget_users(["u1", "nobody"]) == 1
    assert not engine.profile("u1")["known"] and engine.profile("u0")["known"]
    assert engine.stats()["users_evicted"]["request"] == 1
