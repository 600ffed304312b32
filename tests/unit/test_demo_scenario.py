"""The demo scenario generator: deterministic, realistic, and with the planted stories it promises."""

from __future__ import annotations

import functools
import statistics
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from freshrec.demo.catalog_gen import TIERS, price_tier
from freshrec.demo.scenario import EVENT_TYPES, Scenario, generate_scenario, summary

START = 1_700_000_000.0
DURATION = 6 * 3600.0


@functools.cache
def scenario_for(seed: int) -> Scenario:
    return generate_scenario(seed=seed, start=START)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return scenario_for(7)


def _categories(s: Scenario) -> dict[str, str]:
    return {it["item_id"]: it["category"] for it in s.items}


def _per_user_categories(s: Scenario, events: list[dict[str, Any]] | None = None) -> dict[str, Counter[str]]:
    cat = _categories(s)
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for e in s.events if events is None else events:
        out[e["user_id"]][cat[e["item_id"]]] += 1
    return out


def test_same_seed_same_scenario_and_other_seed_differs() -> None:
    a = generate_scenario(n_users=30, n_items=200, seed=3, start=START)
    b = generate_scenario(n_users=30, n_items=200, seed=3, start=START)
    c = generate_scenario(n_users=30, n_items=200, seed=4, start=START)
    assert a == b
    assert a.items != c.items
    assert a.events != c.events


def test_default_start_puts_every_event_in_the_past() -> None:
    before = time.time()
    s = generate_scenario(n_users=10, n_items=100, duration_seconds=3600)
    assert s.start % 60 == 0
    assert before - 3600 - 60 <= s.start <= before - 3600
    assert max(e["timestamp"] for e in s.events) <= time.time()


def test_default_size(scenario: Scenario) -> None:
    assert len(scenario.items) == 2000
    assert len(scenario.users) == 200
    assert 20_000 <= len(scenario.events) <= 40_000


def test_items_follow_the_catalog_spec(scenario: Scenario) -> None:
    items = scenario.items
    assert len({it["item_id"] for it in items}) == len(items)
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        assert it["item_id"].startswith("sku-")
        assert it["title"]
        assert it["text"].endswith(".")
        assert it["content_type"] == "product"
        assert isinstance(it["in_stock"], bool)
        assert isinstance(it["price"], float)
        assert it["price"] > 0
        assert 1 <= len(it["tags"]) <= 3
        assert all(isinstance(t, str) and t for t in it["tags"])
        by_cat[it["category"]].append(it)
    assert len(by_cat) == 10
    brand_cats: dict[str, set[str]] = defaultdict(set)
    for cat, cat_items in by_cat.items():
        assert 3 <= len({it["subcategory"] for it in cat_items}) <= 5, cat
        assert 5 <= len({it["brand"] for it in cat_items}) <= 8, cat
        for it in cat_items:
            brand_cats[it["brand"]].add(cat)
    assert sum(1 for cats in brand_cats.values() if len(cats) > 1) >= 3  # a few brands span categories
    out_of_stock = sum(1 for it in items if not it["in_stock"]) / len(items)
    assert 0.04 <= out_of_stock <= 0.12

    def median_price(cat: str) -> float:
        return float(statistics.median(it["price"] for it in by_cat[cat]))

    assert median_price("electronics") > 3 * median_price("books")


def test_all_four_price_tiers_present(scenario: Scenario) -> None:
    tiers = summary(scenario)["items_per_tier"]
    assert set(tiers) == set(TIERS)
    assert all(n > 0 for n in tiers.values()), tiers
    tiny = generate_scenario(n_users=2, n_items=4, seed=11, start=START)
    assert {price_tier(it["price"]) for it in tiny.items} == set(TIERS)


def test_all_seven_event_types_present(scenario: Scenario) -> None:
    types = Counter(e["type"] for e in scenario.events)
    assert set(types) == set(EVENT_TYPES)
    assert set(EVENT_TYPES) == {"view", "click", "add_to_cart", "wishlist", "save", "share", "purchase"}


def test_funnel_ordering(scenario: Scenario) -> None:
    t = Counter(e["type"] for e in scenario.events)
    assert t["view"] > 2 * t["click"]
    assert t["click"] > t["add_to_cart"] > t["purchase"] > 0
    for rare in ("wishlist", "save", "share"):
        assert 0 < t[rare] < t["add_to_cart"]


def test_events_are_valid(scenario: Scenario) -> None:
    items = {it["item_id"]: it for it in scenario.items}
    users = {u.user_id for u in scenario.users}
    ids = [e["event_id"] for e in scenario.events]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "demo-000001"
    purchased: set[tuple[str, str]] = set()
    for e in scenario.events:
        assert len(e["event_id"]) <= 128
        assert e["user_id"] in users
        assert e["item_id"] in items
        assert e["type"] in EVENT_TYPES
        assert isinstance(e["timestamp"], float)
        assert 0 < len(e["session_id"]) <= 256
        if e["type"] in ("view", "click"):
            assert e["dwell_seconds"] >= 0
        else:
            assert "dwell_seconds" not in e
        if e["type"] in ("add_to_cart", "purchase"):
            assert items[e["item_id"]]["in_stock"]
        if e["type"] == "purchase":
            assert (e["user_id"], e["item_id"]) not in purchased  # nobody buys the same item twice
            purchased.add((e["user_id"], e["item_id"]))


def test_timestamps_sorted_and_within_the_window(scenario: Scenario) -> None:
    ts = [e["timestamp"] for e in scenario.events]
    assert ts == sorted(ts)
    assert scenario.start == START
    assert scenario.end == START + DURATION
    assert ts[0] >= START and ts[-1] <= START + DURATION
    assert ts[-1] - ts[0] > 0.9 * DURATION  # the stream covers the whole window


def test_sessions_have_5_to_40_events_of_one_user(scenario: Scenario) -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in scenario.events:
        sessions[e["session_id"]].append(e)
    for sid, evs in sessions.items():
        assert 5 <= len(evs) <= 40, sid
        assert len({e["user_id"] for e in evs}) == 1
        assert evs[-1]["timestamp"] - evs[0]["timestamp"] < 3600


def test_planted_category_preference_shows(scenario: Scenario) -> None:
    per_user = _per_user_categories(scenario)
    steady = [u for u in scenario.users if u.drift_category is None]
    hits = [per_user[u.user_id].most_common(1)[0][0] in u.favourite_categories for u in steady]
    assert sum(hits) >= 0.95 * len(steady)
    # the most active steady users, whose history is long, are all true to their favourites
    busiest = sorted(steady, key=lambda u: -sum(per_user[u.user_id].values()))[:30]
    for u in busiest:
        assert per_user[u.user_id].most_common(1)[0][0] in u.favourite_categories, u


def test_planted_brand_preference_shows(scenario: Scenario) -> None:
    brand = {it["item_id"]: it["brand"] for it in scenario.items}
    overall = Counter(brand[e["item_id"]] for e in scenario.events)
    total = sum(overall.values())
    lifts = []
    for u in scenario.users:
        mine = [brand[e["item_id"]] for e in scenario.events if e["user_id"] == u.user_id]
        share = sum(1 for b in mine if b in u.favourite_brands) / len(mine)
        expected = sum(overall[b] for b in u.favourite_brands) / total
        lifts.append(share / expected)
    assert statistics.median(lifts) > 2


def test_some_users_have_a_drifting_session(scenario: Scenario) -> None:
    cat = _categories(scenario)
    drifters = [u for u in scenario.users if u.drift_category is not None]
    assert len(drifters) >= 0.1 * len(scenario.users)
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in scenario.events:
        sessions[e["session_id"]].append(e)
    for u in drifters:
        assert u.drift_category not in u.favourite_categories
        assert u.drift_start is not None
        drift = next(evs for evs in sessions.values() if evs[0]["timestamp"] == u.drift_start)
        assert drift[0]["user_id"] == u.user_id
        in_new = sum(1 for e in drift if cat[e["item_id"]] == u.drift_category)
        assert in_new >= 0.5 * len(drift)
        assert 10 * 60 <= drift[-1]["timestamp"] - drift[0]["timestamp"] <= 30 * 60
        assert drift[-1]["type"] in ("add_to_cart", "purchase")
        assert cat[drift[-1]["item_id"]] == u.drift_category


def test_viral_bursts_stand_out(scenario: Scenario) -> None:
    # unique users per item in 30-minute windows hopping by 10 minutes
    users: dict[tuple[int, str], set[str]] = defaultdict(set)
    for e in scenario.events:
        slot = int(e["timestamp"] - START) // 600
        for window in (slot - 2, slot - 1, slot):
            users[(window, e["item_id"])].add(e["user_id"])
    top: dict[int, tuple[int, str]] = {}
    for (window, item), who in users.items():
        top[window] = max(top.get(window, (0, "")), (len(who), item))
    typical = statistics.median(n for n, _ in top.values())
    viral_items = {item for n, item in top.values() if n >= 2 * typical}
    assert len(viral_items) >= 2


@pytest.mark.parametrize("seed", [1, 7, 12])
def test_spotlight_user_drifts_late_in_the_stream(seed: int) -> None:
    s = scenario_for(seed)
    profile = next(u for u in s.users if u.user_id == s.spotlight_user)
    assert profile.drift_category is not None and profile.drift_start is not None
    assert profile.drift_start >= s.start + 0.5 * (s.end - s.start)
    mine = [e for e in s.events if e["user_id"] == s.spotlight_user]
    lifetime_top = _per_user_categories(s, mine)[s.spotlight_user].most_common(1)[0][0]
    assert lifetime_top in profile.favourite_categories
    last = mine[-1]["timestamp"]
    for since in (last - 3600, s.end - 3600):  # the last hour of their activity, and of the stream
        recent = [e for e in mine if e["timestamp"] >= since]
        recent_top = _per_user_categories(s, recent)[s.spotlight_user].most_common(1)[0][0]
        assert recent_top == profile.drift_category != lifetime_top
    # the preference was established before the drift
    early = [e for e in mine if e["timestamp"] < profile.drift_start]
    assert len(early) >= 40


def test_spotlight_story(scenario: Scenario) -> None:
    story = scenario.spotlight_story
    profile = next(u for u in scenario.users if u.user_id == scenario.spotlight_user)
    assert profile.drift_category is not None and profile.drift_start is not None
    times = [t for t, _ in story]
    assert times == sorted(times)
    assert all(scenario.start <= t <= scenario.end for t in times)
    assert all(isinstance(line, str) and line for _, line in story)
    assert scenario.spotlight_user in story[0][1]
    texts = [line for _, line in story]
    start_line = next(i for i, line in enumerate(texts) if line.startswith("starts browsing"))
    assert profile.drift_category in texts[start_line]
    assert times[start_line] == profile.drift_start
    assert any(line.startswith("adds ") and "to cart" in line for line in texts[start_line:])
    assert any(line.startswith("buys ") and profile.drift_category in line for line in texts[start_line:])


def test_summary_counts(scenario: Scenario) -> None:
    s = summary(scenario)
    assert s == scenario.summary()
    assert s["users"] == 200
    assert s["items"] == 2000
    assert s["events"] == len(scenario.events) == sum(s["events_per_type"].values())
    assert sum(s["items_per_tier"].values()) == 2000
    assert s["spotlight_user"] == scenario.spotlight_user
    assert s["drifting_users"] >= 20
    assert s["categories"] == 10


def test_small_and_short_scenarios_stay_valid() -> None:
    s = generate_scenario(n_users=1, n_items=5, seed=2, start=0.0, duration_seconds=600)
    ts = [e["timestamp"] for e in s.events]
    assert ts == sorted(ts)
    assert ts[0] >= 0.0 and ts[-1] <= 600.0
    assert s.spotlight_user == "user-0001"


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        generate_scenario(n_users=0)
    with pytest.raises(ValueError, match="positive"):
        generate_scenario(duration_seconds=0)
