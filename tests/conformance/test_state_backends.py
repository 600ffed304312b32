"""Conformance of every state back end to the :class:`freshrec.state.base.StateStore` Protocol.

Each test runs once per back end listed in ``BACKENDS`` and uses nothing but the Protocol's methods (plus a
``dump`` → ``load`` round trip), so a new back end is checked by adding its URL there. Property-based
tests give every generated example its own namespace, so they need no way to empty a store between
examples.

``redis://`` stands for the session's Valkey server (``redis_server`` in ``conftest.py``): every store the
tests open on it gets its own key prefix, so each one starts empty.
"""

from __future__ import annotations

import itertools
import math
import os
import pickle
import sys
from collections.abc import Callable, Hashable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from freshrec.state import StateStore, open_state
from freshrec.state.base import LogGap
from freshrec.state.redis import RedisState
from support.redis_server import RedisServer

#: State back ends under test, by URL (``redis://``: the test server, one fresh key prefix per store).
BACKENDS = [pytest.param("memory://", id="memory"), pytest.param("redis://", id="redis")]

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_namespaces = itertools.count()
_prefixes = itertools.count()


def fresh_ns(prefix: str = "ns") -> str:
    """A namespace no earlier example or test of this process used."""
    return f"{prefix}-{next(_namespaces)}"


def store_url(request: pytest.FixtureRequest, url: str) -> str:
    """The URL of a new, empty store of back end ``url`` (the test server gets a prefix of its own)."""
    if url != "redis://":
        return url
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?prefix=conformance-{next(_prefixes)}"


@pytest.fixture(params=BACKENDS)
def store_at(request: pytest.FixtureRequest) -> str:
    """The URL the ``store`` fixture opened."""
    return store_url(request, request.param)


@pytest.fixture
def store(store_at: str) -> StateStore:
    return open_state(store_at)


@pytest.fixture
def other_store(request: pytest.FixtureRequest, store_at: str, store: StateStore) -> StateStore:
    """A second, empty store of the same back end as ``store``."""
    url: str = request.node.callspec.params["store_at"]
    return open_state(store_url(request, url))


def ranking_list(store: StateStore, ns: str, ranking: Hashable) -> list[tuple[str, float]]:
    return list(store.rank_iter(ns, ranking))


def expected_order(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


# ---------------------------------------------------------------------------------------------------------
# Counters


def test_add_creates_fields_at_zero_and_accumulates(store: StateStore) -> None:
    ns = fresh_ns()
    store.begin()
    store.add(ns, "u1", "books", {"views": 1.0, "score": 2.5})
    store.add(ns, "u1", "books", {"views": 2.0, "clicks": 1.0})
    store.add(ns, "u1", "music", {"views": 1.0})
    store.add(ns, "u2", "books", {"score": -1.0})
    store.commit()
    assert dict(store.fields(ns, "u1", "books") or {}) == {"views": 3.0, "score": 2.5, "clicks": 1.0}
    assert dict(store.fields(ns, "u1", "music") or {}) == {"views": 1.0}
    assert dict(store.fields(ns, "u2", "books") or {}) == {"score": -1.0}
    assert store.fields(ns, "u1", "games") is None
    assert store.fields(ns, "u3", "books") is None
    assert store.fields(fresh_ns(), "u1", "books") is None


def test_add_does_not_keep_a_reference_to_the_callers_mapping(store: StateStore) -> None:
    ns = fresh_ns()
    deltas = {"views": 1.0}
    store.add(ns, "u1", "books", deltas)
    store.add(ns, "u1", "books", deltas)
    assert deltas == {"views": 1.0}
    assert dict(store.fields(ns, "u1", "books") or {}) == {"views": 2.0}


def test_put_max_keeps_the_largest_value(store: StateStore) -> None:
    ns = fresh_ns()
    store.put_max(ns, "u1", "books", "last", 10.0)
    assert dict(store.fields(ns, "u1", "books") or {}) == {"last": 10.0}
    store.put_max(ns, "u1", "books", "last", 5.0)
    assert dict(store.fields(ns, "u1", "books") or {}) == {"last": 10.0}
    store.put_max(ns, "u1", "books", "last", 12.5)
    store.put_max(ns, "u1", "books", "first", -3.0)
    assert dict(store.fields(ns, "u1", "books") or {}) == {"last": 12.5, "first": -3.0}
    # put_max and add share the member's fields
    store.add(ns, "u1", "books", {"views": 1.0})
    assert dict(store.fields(ns, "u1", "books") or {}) == {"last": 12.5, "first": -3.0, "views": 1.0}


def test_members_and_keys(store: StateStore) -> None:
    ns = fresh_ns()
    assert dict(store.members(ns, "u1")) == {}
    assert list(store.keys(ns)) == []
    store.add(ns, "u1", "books", {"n": 1.0})
    store.add(ns, "u1", "music", {"n": 2.0})
    store.put_max(ns, "u2", "books", "last", 7.0)
    members = {m: dict(f) for m, f in store.members(ns, "u1").items()}
    assert members == {"books": {"n": 1.0}, "music": {"n": 2.0}}
    assert {m: dict(f) for m, f in store.members(ns, "u2").items()} == {"books": {"last": 7.0}}
    assert sorted(store.keys(ns)) == ["u1", "u2"]
    # another namespace is independent
    other = fresh_ns()
    store.add(other, "u9", "x", {"n": 1.0})
    assert sorted(store.keys(ns)) == ["u1", "u2"]
    assert list(store.keys(other)) == ["u9"]


def test_keys_include_every_primitive_keyed_by_entity(store: StateStore) -> None:
    ns = fresh_ns()
    store.add_decayed(ns, "decayed", "m", "f", 1.0, 100.0, 60.0)
    store.window_add(ns, "windowed", "m", 0.0, {"n": 1.0})
    store.push_bounded(ns, "bounded", 1, "v", 3)
    store.set_add(ns, "set", "v")
    store.add(ns, "counter", "m", {"n": 1.0})
    assert sorted(store.keys(ns)) == ["bounded", "counter", "decayed", "set", "windowed"]


# ---------------------------------------------------------------------------------------------------------
# Decayed sums

HALF_LIFE = 30 * 86_400.0


def test_decayed_sum_of_one_value_halves_every_half_life(store: StateStore) -> None:
    ns = fresh_ns()
    store.add_decayed(ns, "u1", "books", "affinity", 8.0, 1_000.0, 100.0)
    assert store.read_decayed(ns, "u1", "books", "affinity", 1_000.0, 100.0) == pytest.approx(8.0)
    assert store.read_decayed(ns, "u1", "books", "affinity", 1_100.0, 100.0) == pytest.approx(4.0)
    assert store.read_decayed(ns, "u1", "books", "affinity", 1_300.0, 100.0) == pytest.approx(1.0)
    assert store.read_decayed(ns, "u1", "books", "missing", 1_300.0, 100.0) == 0.0
    assert store.read_decayed(ns, "u1", "music", "affinity", 1_300.0, 100.0) == 0.0


def test_decayed_sums_are_separate_per_key_member_and_field(store: StateStore) -> None:
    ns = fresh_ns()
    store.add_decayed(ns, "u1", "books", "a", 1.0, 0.0, 10.0)
    store.add_decayed(ns, "u1", "books", "b", 2.0, 0.0, 10.0)
    store.add_decayed(ns, "u1", "music", "a", 4.0, 0.0, 10.0)
    store.add_decayed(ns, "u2", "books", "a", 8.0, 0.0, 10.0)
    reads = [
        store.read_decayed(ns, "u1", "books", "a", 0.0, 10.0),
        store.read_decayed(ns, "u1", "books", "b", 0.0, 10.0),
        store.read_decayed(ns, "u1", "music", "a", 0.0, 10.0),
        store.read_decayed(ns, "u2", "books", "a", 0.0, 10.0),
    ]
    assert reads == pytest.approx([1.0, 2.0, 4.0, 8.0])


BASE_TS = 1_700_000_000.0


@PROPERTY_SETTINGS
@given(
    observations=st.lists(
        st.tuples(
            st.floats(min_value=0.001, max_value=1_000.0, allow_nan=False, allow_infinity=False),
            st.floats(min_value=0.0, max_value=1_000_000.0, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=40,
    ),
    half_life=st.floats(min_value=3_600.0, max_value=HALF_LIFE),
    read_after=st.floats(min_value=-500_000.0, max_value=2_000_000.0),
)
def test_decayed_sum_matches_the_formula_in_any_arrival_order(
    store: StateStore, observations: list[tuple[float, float]], half_life: float, read_after: float
) -> None:
    ns = fresh_ns("decayed")
    for value, offset in observations:
        store.add_decayed(ns, "u", "m", "f", value, BASE_TS + offset, half_life)
    newest = max(BASE_TS + offset for _, offset in observations)
    for now in (newest, newest + read_after):
        expected = math.fsum(
            value * 2.0 ** (-(now - (BASE_TS + off)) / half_life) for value, off in observations
        )
        got = store.read_decayed(ns, "u", "m", "f", now, half_life)
        assert math.isclose(got, expected, rel_tol=1e-9), (now, got, expected)


# ---------------------------------------------------------------------------------------------------------
# Windowed counters, distinct sets and their expiry


def test_window_add_accumulates_per_member_and_window(store: StateStore) -> None:
    ns = fresh_ns()
    store.window_add(ns, "u1", "books", 0.0, {"views": 1.0})
    store.window_add(ns, "u1", "books", 0.0, {"views": 1.0, "clicks": 1.0})
    store.window_add(ns, "u1", "books", 3_600.0, {"views": 5.0})
    store.window_add(ns, "u1", "music", 0.0, {"views": 2.0})
    store.window_add(ns, "u2", "books", 7_200.0, {"views": 1.0})
    got = {slot: dict(f) for slot, f in store.window_members(ns, "u1").items()}
    assert got == {
        ("books", 0.0): {"views": 2.0, "clicks": 1.0},
        ("books", 3_600.0): {"views": 5.0},
        ("music", 0.0): {"views": 2.0},
    }
    assert dict(store.window_members(ns, "nobody")) == {}
    assert list(store.window_starts(ns)) == [0.0, 3_600.0, 7_200.0]
    assert sorted(store.window_keys(ns, 0.0)) == ["u1"]
    assert sorted(store.window_keys(ns, 7_200.0)) == ["u2"]
    assert list(store.window_keys(ns, 10_800.0)) == []
    assert sorted(store.keys(ns)) == ["u1", "u2"]


def test_window_starts_are_sorted_whatever_the_arrival_order(store: StateStore) -> None:
    ns = fresh_ns()
    for start in (900.0, 0.0, 2_700.0, 1_800.0, 900.0):
        store.window_add(ns, "k", "", start, {"n": 1.0})
    assert list(store.window_starts(ns)) == [0.0, 900.0, 1_800.0, 2_700.0]


def test_expire_windows_drops_exactly_the_windows_before_the_bound(store: StateStore) -> None:
    ns = fresh_ns()
    untouched = fresh_ns()
    starts = [0.0, 100.0, 200.0, 300.0]
    for start in starts:
        for key in ("a", "b"):
            store.window_add(ns, key, "m", start, {"n": start + 1})
            assert store.add_distinct(ns, key, "m", f"user@{start}", start)
            store.rank_add(ns, ("all", start), key, start + 1, start)
        store.window_add(untouched, "a", "m", start, {"n": 1.0})
        store.rank_add(untouched, ("all", start), "a", 1.0, start)
    # data without a window survives any expiry
    store.add(ns, "a", "m", {"lifetime": 1.0})
    assert store.add_distinct(ns, "a", "m", "lifetime-user")
    store.rank_add(ns, "lifetime", "a", 5.0)

    store.expire_windows(ns, 200.0)  # the window starting at the bound stays

    assert list(store.window_starts(ns)) == [200.0, 300.0]
    for key in ("a", "b"):
        slots = {slot: dict(f) for slot, f in store.window_members(ns, key).items()}
        assert slots == {("m", 200.0): {"n": 201.0}, ("m", 300.0): {"n": 301.0}}
    for start in (0.0, 100.0):
        assert list(store.window_keys(ns, start)) == []
        assert store.count_distinct(ns, "a", "m", start) == 0
        assert ranking_list(store, ns, ("all", start)) == []
        assert store.rank_size(ns, ("all", start)) == 0
        assert store.rank_score(ns, ("all", start), "a") is None
    for start in (200.0, 300.0):
        assert sorted(store.window_keys(ns, start)) == ["a", "b"]
        assert store.count_distinct(ns, "a", "m", start) == 1
        assert not store.add_distinct(ns, "a", "m", f"user@{start}", start)
        assert ranking_list(store, ns, ("all", start)) == [("a", start + 1), ("b", start + 1)]
    # not windowed, or another namespace: untouched
    assert dict(store.fields(ns, "a", "m") or {}) == {"lifetime": 1.0}
    assert store.count_distinct(ns, "a", "m") == 1
    assert ranking_list(store, ns, "lifetime") == [("a", 5.0)]
    assert list(store.window_starts(untouched)) == starts
    assert len(store.window_members(untouched, "a")) == 4
    assert ranking_list(store, untouched, ("all", 0.0)) == [("a", 1.0)]

    # an expired window is empty if written again (a late event while it was retained is gone)
    assert store.add_distinct(ns, "a", "m", "user@0.0", 0.0)
    assert store.count_distinct(ns, "a", "m", 0.0) == 1


def test_expire_windows_drops_windows_that_hold_only_distinct_sets(store: StateStore) -> None:
    ns = fresh_ns()
    assert store.add_distinct(ns, "k", "m", "u1", 0.0)
    assert store.add_distinct(ns, "k", "m", "u1", 60.0)
    store.expire_windows(ns, 60.0)
    assert store.count_distinct(ns, "k", "m", 0.0) == 0
    assert store.count_distinct(ns, "k", "m", 60.0) == 1
    assert 0.0 not in list(store.window_starts(ns))


@PROPERTY_SETTINGS
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"]), st.integers(0, 9)),
        min_size=1,
        max_size=40,
    ),
    bound=st.integers(0, 10),
)
def test_expire_windows_property(store: StateStore, writes: list[tuple[str, str, int]], bound: int) -> None:
    ns = fresh_ns("expire")
    size = 3_600.0
    expected: dict[str, dict[tuple[Hashable, float], float]] = {}
    for key, member, window in writes:
        store.window_add(ns, key, member, window * size, {"n": 1.0})
        slot = (member, window * size)
        expected.setdefault(key, {})[slot] = expected.get(key, {}).get(slot, 0.0) + 1.0
    store.expire_windows(ns, bound * size)
    for key in ("a", "b", "c"):
        kept = {slot: n for slot, n in expected.get(key, {}).items() if slot[1] >= bound * size}
        got = {slot: f["n"] for slot, f in store.window_members(ns, key).items()}
        assert got == kept
    kept_starts = sorted({w * size for _, _, w in writes if w >= bound})
    assert list(store.window_starts(ns)) == kept_starts
    for window in range(10):
        keys = {k for k, _, w in writes if w == window and w >= bound}
        assert set(store.window_keys(ns, window * size)) == keys


def test_add_distinct_is_true_only_the_first_time(store: StateStore) -> None:
    ns = fresh_ns()
    assert store.add_distinct(ns, "u1", "books", "item-1")
    assert not store.add_distinct(ns, "u1", "books", "item-1")
    assert store.add_distinct(ns, "u1", "books", "item-2")
    # another key, member, window or namespace is another set
    assert store.add_distinct(ns, "u2", "books", "item-1")
    assert store.add_distinct(ns, "u1", "music", "item-1")
    assert store.add_distinct(ns, "u1", "books", "item-1", 0.0)
    assert not store.add_distinct(ns, "u1", "books", "item-1", 0.0)
    assert store.add_distinct(ns, "u1", "books", "item-1", 3_600.0)
    assert store.add_distinct(fresh_ns(), "u1", "books", "item-1")
    assert store.count_distinct(ns, "u1", "books") == 2
    assert store.count_distinct(ns, "u1", "books", 0.0) == 1
    assert store.count_distinct(ns, "u1", "books", 3_600.0) == 1
    assert store.count_distinct(ns, "u1", "books", 7_200.0) == 0
    assert store.count_distinct(ns, "u9", "books") == 0


@PROPERTY_SETTINGS
@given(
    adds=st.lists(
        st.tuples(
            st.sampled_from(["k1", "k2"]),
            st.sampled_from(["m1", "m2"]),
            st.sampled_from(["v1", "v2", "v3"]),
            st.sampled_from([None, 0.0, 900.0]),
        ),
        max_size=40,
    )
)
def test_add_distinct_property(store: StateStore, adds: list[tuple[str, str, str, float | None]]) -> None:
    ns = fresh_ns("distinct")
    seen: set[tuple[str, str, str, float | None]] = set()
    for key, member, value, window in adds:
        new = (key, member, value, window) not in seen
        seen.add((key, member, value, window))
        assert store.add_distinct(ns, key, member, value, window) is new
    for key, member, window in itertools.product(["k1", "k2"], ["m1", "m2"], [None, 0.0, 900.0]):
        expected = sum(1 for s in seen if s[0] == key and s[1] == member and s[3] == window)
        assert store.count_distinct(ns, key, member, window) == expected


# ---------------------------------------------------------------------------------------------------------
# Rankings


def test_ranking_order_is_score_desc_then_member_asc(store: StateStore) -> None:
    ns = fresh_ns()
    for member, delta in [("b", 2.0), ("a", 2.0), ("c", 5.0), ("d", -1.0), ("e", 0.0)]:
        store.rank_add(ns, "r", member, delta)
    assert ranking_list(store, ns, "r") == [("c", 5.0), ("a", 2.0), ("b", 2.0), ("e", 0.0), ("d", -1.0)]
    assert store.rank_size(ns, "r") == 5
    assert store.rank_score(ns, "r", "a") == 2.0
    assert store.rank_score(ns, "r", "zz") is None
    assert store.rank_score(ns, "nope", "a") is None
    assert ranking_list(store, ns, "nope") == []
    assert store.rank_size(ns, "nope") == 0
    store.rank_add(ns, "r", "b", 4.0)
    store.rank_remove(ns, "r", "c")
    store.rank_remove(ns, "r", "never-there")
    store.rank_remove(ns, "never-created", "a")
    assert ranking_list(store, ns, "r") == [("b", 6.0), ("a", 2.0), ("e", 0.0), ("d", -1.0)]
    assert store.rank_score(ns, "r", "c") is None
    assert store.rank_size(ns, "r") == 4


def test_rankings_with_tuple_names_are_separate(store: StateStore) -> None:
    ns = fresh_ns()
    store.rank_add(ns, ("category", 900.0, "books"), "a", 1.0, 900.0)
    store.rank_add(ns, ("category", 900.0, None), "b", 1.0, 900.0)
    store.rank_add(ns, ("all", 900.0), "a", 3.0, 900.0)
    assert ranking_list(store, ns, ("category", 900.0, "books")) == [("a", 1.0)]
    assert ranking_list(store, ns, ("category", 900.0, None)) == [("b", 1.0)]
    assert ranking_list(store, ns, ("all", 900.0)) == [("a", 3.0)]


MEMBERS = st.text(alphabet="abcAB-é", min_size=1, max_size=3)
RANK_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), MEMBERS, st.integers(-5, 10).map(float)),
        st.tuples(st.just("add"), MEMBERS, st.sampled_from([0.5, 0.25, 1.5])),
        st.tuples(st.just("remove"), MEMBERS, st.just(0.0)),
        st.tuples(st.just("read"), st.just(""), st.just(0.0)),
    ),
    max_size=120,
)


@PROPERTY_SETTINGS
@given(ops=RANK_OPS)
def test_ranking_order_after_any_interleaving(store: StateStore, ops: list[tuple[str, str, float]]) -> None:
    ns = fresh_ns("rank")
    expected: dict[str, float] = {}
    for op, member, delta in ops:
        if op == "add":
            store.rank_add(ns, "r", member, delta)
            expected[member] = expected.get(member, 0.0) + delta
        elif op == "remove":
            store.rank_remove(ns, "r", member)
            expected.pop(member, None)
        else:
            assert ranking_list(store, ns, "r") == expected_order(expected)
            assert store.rank_size(ns, "r") == len(expected)
    assert ranking_list(store, ns, "r") == expected_order(expected)
    assert store.rank_size(ns, "r") == len(expected)
    for member, score in expected.items():
        assert store.rank_score(ns, "r", member) == score


def test_ranking_stays_ordered_when_few_members_of_a_large_one_change(store: StateStore) -> None:
    ns = fresh_ns()
    expected: dict[str, float] = {}
    for i in range(300):
        member = f"item-{i:03d}"
        store.rank_add(ns, "r", member, float(i % 17))
        expected[member] = float(i % 17)
    assert ranking_list(store, ns, "r") == expected_order(expected)
    for step in range(50):
        member = f"item-{(step * 37) % 300:03d}"
        if step % 7 == 0:
            store.rank_remove(ns, "r", member)
            expected.pop(member, None)
        else:
            store.rank_add(ns, "r", member, 3.0 - step % 5)
            expected[member] = expected.get(member, 0.0) + 3.0 - step % 5
        assert ranking_list(store, ns, "r")[:20] == expected_order(expected)[:20]
    assert ranking_list(store, ns, "r") == expected_order(expected)


# ---------------------------------------------------------------------------------------------------------
# Bounded lists


def test_push_bounded_keeps_the_largest_sort_keys(store: StateStore) -> None:
    ns = fresh_ns()
    for sort_key in (5, 1, 9, 3, 7, 2):
        store.push_bounded(ns, "u1", sort_key, f"v{sort_key}", 3)
    assert list(store.bounded(ns, "u1")) == ["v9", "v7", "v5"]
    assert list(store.bounded(ns, "nobody")) == []


def test_push_bounded_ties_first_in_stays(store: StateStore) -> None:
    """The Protocol: ``ties: first in stays`` — an entry is never displaced by an equal later one."""
    ns = fresh_ns()
    store.push_bounded(ns, "k", 1, "first", 2)
    store.push_bounded(ns, "k", 1, "second", 2)
    store.push_bounded(ns, "k", 1, "third", 2)  # full, ties the smallest: not kept
    assert sorted(store.bounded(ns, "k")) == ["first", "second"]


def test_push_bounded_evicts_the_latest_of_tied_smallest_entries(store: StateStore) -> None:
    """When a larger entry arrives and the smallest sort key is tied, the first-in of them stays."""
    ns = fresh_ns()
    store.push_bounded(ns, "k", 1, "first", 2)
    store.push_bounded(ns, "k", 1, "second", 2)
    store.push_bounded(ns, "k", 2, "larger", 2)
    assert list(store.bounded(ns, "k")) == ["larger", "first"]


@PROPERTY_SETTINGS
@given(
    sort_keys=st.lists(
        st.tuples(st.floats(0, 1e6, allow_nan=False), st.text(alphabet="abc", max_size=3)),
        unique=True,
        max_size=60,
    ),
    cap=st.integers(1, 12),
)
def test_push_bounded_property(store: StateStore, sort_keys: list[tuple[float, str]], cap: int) -> None:
    ns = fresh_ns("bounded")
    for sort_key in sort_keys:
        store.push_bounded(ns, "k", sort_key, {"entry": list(sort_key)}, cap)
    expected = [{"entry": list(k)} for k in sorted(sort_keys, reverse=True)[:cap]]
    assert list(store.bounded(ns, "k")) == expected


# ---------------------------------------------------------------------------------------------------------
# Sets and idempotency


def test_sets(store: StateStore) -> None:
    ns = fresh_ns()
    assert set(store.set_members(ns, "u1")) == set()
    store.set_add(ns, "u1", "a")
    store.set_add(ns, "u1", "b")
    store.set_add(ns, "u1", "a")
    store.set_add(ns, "u2", "c")
    assert set(store.set_members(ns, "u1")) == {"a", "b"}
    assert set(store.set_members(ns, "u2")) == {"c"}
    assert set(store.set_members(fresh_ns(), "u1")) == set()


def test_seen_mark_seen_and_forget(store: StateStore) -> None:
    assert not store.seen("e1")
    store.mark_seen("e1", 100.0)
    store.mark_seen("e2", 200.0)
    store.mark_seen("e3", 300.0)
    assert store.seen("e1") and store.seen("e2") and store.seen("e3")
    assert not store.seen("e4")
    store.forget_seen_before(200.0)  # strictly before
    assert not store.seen("e1")
    assert store.seen("e2")
    assert store.seen("e3")
    store.forget_seen_before(1_000.0)
    assert not store.seen("e2") and not store.seen("e3")


# ---------------------------------------------------------------------------------------------------------
# dump -> load


def _populate(store: StateStore, ns: str) -> None:
    store.begin()
    store.add(ns, "u1", "books", {"views": 2.0, "clicks": 1.0})
    store.add(ns, "u2", "music", {"views": 1.0})
    store.put_max(ns, "u1", "books", "last", 123.0)
    store.add_decayed(ns, "u1", "books", "affinity", 3.0, 1_000.0, 500.0)
    store.add_decayed(ns, "u1", "books", "affinity", 5.0, 800.0, 500.0)
    store.window_add(ns, "u1", "books", 0.0, {"views": 1.0})
    store.window_add(ns, "u1", "books", 3_600.0, {"views": 4.0})
    store.window_add(ns, "u3", "", 3_600.0, {"views": 1.0})
    store.add_distinct(ns, "u1", "books", "item-1")
    store.add_distinct(ns, "u1", "books", "item-2", 3_600.0)
    for i in range(40):
        store.rank_add(ns, "pop", f"item-{i % 13}", float(i % 5))
        if i % 10 == 0:
            list(store.rank_iter(ns, "pop"))  # reads in between build the order incrementally
    store.rank_remove(ns, "pop", "item-3")
    store.rank_add(ns, ("all", 3_600.0), "item-1", 2.0, 3_600.0)
    store.rank_add(ns, ("all", 3_600.0), "item-2", 2.0, 3_600.0)
    store.rank_add(ns, "emptied", "x", 1.0)
    store.rank_remove(ns, "emptied", "x")
    for ts in (5, 3, 8, 1):
        store.push_bounded(ns, "u1", (float(ts), f"e{ts}"), ("item", ts), 3)
    store.set_add(ns, "u1", "bought-1")
    store.mark_seen("event-1", 10.0)
    store.mark_seen("event-2", 20.0)
    store.commit()


def _reads(store: StateStore, ns: str) -> dict[str, Any]:
    users = ["u1", "u2", "u3", "u4"]
    return {
        "keys": sorted(store.keys(ns)),
        "fields": {u: {m: dict(f) for m, f in store.members(ns, u).items()} for u in users},
        "one": store.fields(ns, "u1", "books"),
        "decayed": [store.read_decayed(ns, "u1", "books", "affinity", t, 500.0) for t in (1_000.0, 2_000.0)],
        "windows": {u: {s: dict(f) for s, f in store.window_members(ns, u).items()} for u in users},
        "starts": list(store.window_starts(ns)),
        "window_keys": {s: sorted(store.window_keys(ns, s)) for s in (0.0, 3_600.0, 7_200.0)},
        "distinct": [
            store.count_distinct(ns, "u1", "books"),
            store.count_distinct(ns, "u1", "books", 3_600.0),
        ],
        "rankings": {
            name: (ranking_list(store, ns, name), store.rank_size(ns, name))
            for name in ("pop", ("all", 3_600.0), "emptied", "never")
        },
        "rank_scores": [store.rank_score(ns, "pop", m) for m in ("item-0", "item-3", "item-12")],
        "bounded": list(store.bounded(ns, "u1")),
        "sets": sorted(store.set_members(ns, "u1")),
        "seen": [store.seen(e) for e in ("event-1", "event-2", "event-3")],
    }


def test_dump_load_gives_identical_reads(store: StateStore, other_store: StateStore) -> None:
    ns = fresh_ns()
    _populate(store, ns)
    before = _reads(store, ns)
    assert before["rankings"]["pop"][0][:2] == [("item-0", 8.0), ("item-8", 8.0)]
    other_store.load(store.dump())
    assert _reads(other_store, ns) == before
    # the loaded store answers "was it new" like the original
    assert not other_store.add_distinct(ns, "u1", "books", "item-1")
    assert not other_store.add_distinct(ns, "u1", "books", "item-2", 3_600.0)
    # and keeps working: writes, ranking order and expiry after the load
    for target in (store, other_store):
        target.rank_add(ns, "pop", "item-0", 100.0)
        target.rank_add(ns, "pop", "item-3", 1.0)
        target.rank_add(ns, "emptied", "y", 2.0)
        target.expire_windows(ns, 3_600.0)
        target.push_bounded(ns, "u1", (9.0, "e9"), ("item", 9), 3)
    assert _reads(other_store, ns) == _reads(store, ns)
    assert ranking_list(other_store, ns, "pop")[0] == ("item-0", 108.0)


def test_load_replaces_the_whole_state(store: StateStore, other_store: StateStore) -> None:
    ns = fresh_ns()
    _populate(store, ns)
    blob = store.dump()
    other_store.add(ns, "stale", "m", {"n": 1.0})
    other_store.rank_add(ns, "pop", "stale-item", 1_000.0)
    other_store.mark_seen("stale-event", 1.0)
    other_store.set_add(ns, "u1", "stale")
    other_store.load(blob)
    assert _reads(other_store, ns) == _reads(store, ns)
    assert other_store.fields(ns, "stale", "m") is None
    assert not other_store.seen("stale-event")


def test_dump_of_an_empty_store_loads(store: StateStore, other_store: StateStore) -> None:
    ns = fresh_ns()
    other_store.load(store.dump())
    assert _reads(other_store, ns) == _reads(store, ns)
    assert isinstance(store.stats(), dict)


# ---------------------------------------------------------------------------------------------------------
# Timelines, remembered event ids, documents and change logs


def test_timeline_range_is_inclusive_and_in_time_then_arrival_order(store: StateStore) -> None:
    ns = fresh_ns()
    for ts, value in [(5.0, "e"), (1.0, "a"), (3.0, "c1"), (3.0, "c2"), (9.0, "z"), (3.0, "c3")]:
        store.timeline_add(ns, "u", ts, value)
    assert store.timeline_range(ns, "u", 1.0, 5.0) == [
        (1.0, "a"),
        (3.0, "c1"),
        (3.0, "c2"),
        (3.0, "c3"),
        (5.0, "e"),
    ]
    assert store.timeline_range(ns, "u", 3.5, 8.9) == [(5.0, "e")]
    assert store.timeline_range(ns, "other", 0.0, 10.0) == []
    assert store.timeline_last(ns, "u") == 9.0
    assert store.timeline_last(ns, "other") is None
    store.timeline_trim(ns, "u", 3.0)  # strictly before
    assert store.timeline_range(ns, "u", -math.inf, math.inf)[:2] == [(3.0, "c1"), (3.0, "c2")]
    store.timeline_trim(ns, "u", 100.0)
    assert store.timeline_range(ns, "u", -math.inf, math.inf) == []
    assert store.timeline_last(ns, "u") is None
    assert list(store.keys(ns)) == []  # timelines are not entity data of a view's full read


def test_timeline_accepts_entries_after_being_trimmed_empty(store: StateStore) -> None:
    ns = fresh_ns()
    store.timeline_add(ns, "u", 1.0, "a")
    store.timeline_trim(ns, "u", 2.0)
    store.timeline_add(ns, "u", 1.5, "b")
    assert store.timeline_range(ns, "u", 0.0, 3.0) == [(1.5, "b")]


def test_seen_count_and_forget_seen_beyond_keep_the_latest(store: StateStore) -> None:
    for i, ts in enumerate([50.0, 10.0, 40.0, 20.0, 30.0]):
        store.mark_seen(f"e{i}", ts)
    store.mark_seen("e1", 60.0)  # marked again: the later time counts
    assert store.seen_count() == 5
    store.forget_seen_beyond(10)
    assert store.seen_count() == 5
    store.forget_seen_beyond(3)
    assert store.seen_count() == 3
    assert [store.seen(f"e{i}") for i in range(5)] == [True, True, True, False, False]


def test_documents(store: StateStore) -> None:
    ns = fresh_ns()
    assert store.doc_get(ns, "a") is None
    assert store.docs(ns) == {}
    store.doc_put(ns, "a", b"1")
    store.doc_put(ns, "b", b"\x00\xff binary")
    store.doc_put(ns, "a", b"2")
    store.doc_put(ns, "gone", b"x")
    store.doc_put(ns, "gone", None)
    store.doc_put(ns, "never", None)
    assert store.doc_get(ns, "a") == b"2"
    assert store.docs(ns) == {"a": b"2", "b": b"\x00\xff binary"}
    assert store.docs(fresh_ns()) == {}


def test_change_log_reads_after_a_position(store: StateStore, other_store: StateStore) -> None:
    ns = fresh_ns()
    start = store.log_tail(ns)
    assert store.log_read(ns, start, 10) == []
    for i in range(5):
        store.log_append(ns, f"change-{i}".encode())
    entries = store.log_read(ns, start, 3)
    assert [v for _, v in entries] == [b"change-0", b"change-1", b"change-2"]
    rest = store.log_read(ns, entries[-1][0], 10)
    assert [v for _, v in rest] == [b"change-3", b"change-4"]
    assert store.log_tail(ns) == rest[-1][0]
    assert store.log_read(ns, store.log_tail(ns), 10) == []
    # a position this log never reached (another store's, further on): the log was reset
    for i in range(8):
        other_store.log_append(ns, b"x%d" % i)
    with pytest.raises(LogGap):
        store.log_read(ns, other_store.log_tail(ns), 10)


# ---------------------------------------------------------------------------------------------------------
# Batches: reads inside a batch see its pending writes


def test_reads_inside_a_batch_see_its_pending_writes(store: StateStore) -> None:
    ns = fresh_ns()
    event = f"{ns}-event"
    store.add(ns, "u", "books", {"views": 1.0})
    for ts in (-3.0, -2.0):
        store.timeline_add(ns, "u", ts, "older")
    store.timeline_add(ns, "u", 10.0, "z-before")
    store.begin()
    assert store.add_distinct(ns, "u", "books", "item-1")
    assert not store.add_distinct(ns, "u", "books", "item-1")
    assert store.add_distinct(ns, "u", "books", "item-2", 0.0)
    assert not store.add_distinct(ns, "u", "books", "item-2", 0.0)
    assert store.count_distinct(ns, "u", "books") == 1
    assert store.count_distinct(ns, "u", "books", 0.0) == 1
    store.add(ns, "u", "books", {"views": 2.0, "clicks": 1.0})
    store.put_max(ns, "u", "books", "last", 7.0)
    store.add(ns, "u", "music", {})
    assert dict(store.fields(ns, "u", "books") or {}) == {"views": 3.0, "clicks": 1.0, "last": 7.0}
    assert {m: dict(f) for m, f in store.members(ns, "u").items()} == {
        "books": {"views": 3.0, "clicks": 1.0, "last": 7.0},
        "music": {},
    }
    store.add_decayed(ns, "u", "books", "affinity", 4.0, 100.0, 50.0)
    assert store.read_decayed(ns, "u", "books", "affinity", 150.0, 50.0) == pytest.approx(2.0)
    store.window_add(ns, "w", "books", 3_600.0, {"n": 1.0})
    assert {s: dict(f) for s, f in store.window_members(ns, "w").items()} == {("books", 3_600.0): {"n": 1.0}}
    assert list(store.window_starts(ns)) == [0.0, 3_600.0]
    assert list(store.window_keys(ns, 3_600.0)) == ["w"]
    assert sorted(store.keys(ns)) == ["u", "w"]
    store.timeline_add(ns, "u", 12.0, "during")
    store.timeline_add(ns, "u", 10.0, "a-same-time")  # equal times: in the order added, not by value
    assert store.timeline_range(ns, "u", 0.0, 20.0) == [
        (10.0, "z-before"),
        (10.0, "a-same-time"),
        (12.0, "during"),
    ]
    assert store.timeline_last(ns, "u") == 12.0
    store.timeline_trim(ns, "u", 11.0)
    assert store.timeline_range(ns, "u", 0.0, 20.0) == [(12.0, "during")]
    store.set_add(ns, "u", "bought")
    assert set(store.set_members(ns, "u")) == {"bought"}
    assert not store.seen(event)
    store.mark_seen(event, 1.0)
    assert store.seen(event)
    store.rank_add(ns, "r", "a", 2.0)
    store.rank_add(ns, "r", "b", 2.0)
    store.rank_add(ns, "r", "a", 1.0)
    assert store.rank_score(ns, "r", "a") == 3.0
    assert ranking_list(store, ns, "r") == [("a", 3.0), ("b", 2.0)]
    store.rank_remove(ns, "r", "a")
    assert store.rank_score(ns, "r", "a") is None
    assert store.rank_size(ns, "r") == 1
    assert list(store.rank_names(ns)) == ["r"]
    store.push_bounded(ns, "u", 2, "two", 2)
    store.push_bounded(ns, "u", 1, "one", 2)
    store.push_bounded(ns, "u", 3, "three", 2)
    assert list(store.bounded(ns, "u")) == ["three", "two"]
    store.doc_put(ns, "doc", b"v")
    assert store.doc_get(ns, "doc") == b"v"
    assert store.docs(ns) == {"doc": b"v"}
    store.commit()
    # and the same after the commit
    assert not store.add_distinct(ns, "u", "books", "item-1")
    assert dict(store.fields(ns, "u", "books") or {}) == {"views": 3.0, "clicks": 1.0, "last": 7.0}
    assert store.timeline_range(ns, "u", 0.0, 20.0) == [(12.0, "during")]
    assert set(store.set_members(ns, "u")) == {"bought"}
    assert store.seen(event)
    assert ranking_list(store, ns, "r") == [("b", 2.0)]
    assert list(store.bounded(ns, "u")) == ["three", "two"]
    assert store.docs(ns) == {"doc": b"v"}


def test_maintenance_inside_a_batch_acts_on_everything_written_before_it(store: StateStore) -> None:
    ns = fresh_ns()
    store.begin()
    store.window_add(ns, "k", "m", 0.0, {"n": 1.0})
    assert store.add_distinct(ns, "k", "m", "v", 0.0)
    store.rank_add(ns, ("all", 0.0), "a", 1.0, 0.0)
    store.mark_seen(f"{ns}-old", 1.0)
    store.expire_windows(ns, 60.0)
    store.forget_seen_before(2.0)
    store.window_add(ns, "k", "m", 60.0, {"n": 1.0})
    assert store.add_distinct(ns, "k", "m", "v", 0.0)  # the expired window starts over
    store.commit()
    assert {s: dict(f) for s, f in store.window_members(ns, "k").items()} == {("m", 60.0): {"n": 1.0}}
    assert ranking_list(store, ns, ("all", 0.0)) == []
    assert store.count_distinct(ns, "k", "m", 0.0) == 1
    assert not store.seen(f"{ns}-old")


# Random operations applied inside batches (with reads in between) give the reads of the in-memory store
# applying them one by one.
KEYS = st.sampled_from(["u1", "u2"])
SMALL = st.sampled_from(["", "a", ("t", 1.0)])
NUMBERS = st.sampled_from([-1.5, 0.1, 0.2, 1.0, 3.0])
WINDOWS = st.sampled_from([None, 0.0, 60.0, 120.0])
BATCH_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), KEYS, SMALL, st.sampled_from(["x", "y"]), NUMBERS),
        st.tuples(st.just("put_max"), KEYS, SMALL, st.sampled_from(["x", "z"]), NUMBERS),
        st.tuples(st.just("add_decayed"), KEYS, SMALL, NUMBERS, st.integers(0, 500).map(float)),
        st.tuples(st.just("window_add"), KEYS, SMALL, st.sampled_from([0.0, 60.0, 120.0]), NUMBERS),
        st.tuples(st.just("add_distinct"), KEYS, SMALL, st.sampled_from(["v1", "v2", 3]), WINDOWS),
        st.tuples(st.just("rank_add"), SMALL, st.sampled_from(["a", "b", "é"]), NUMBERS, WINDOWS),
        st.tuples(st.just("rank_remove"), SMALL, st.sampled_from(["a", "b"])),
        st.tuples(
            st.just("push_bounded"),
            KEYS,
            st.tuples(st.integers(0, 3), st.sampled_from("ab")),
            st.integers(1, 3),
        ),
        st.tuples(st.just("set_add"), KEYS, st.sampled_from(["s1", "s2"])),
        st.tuples(st.just("timeline_add"), KEYS, st.integers(0, 5).map(float), st.sampled_from(["i1", "i2"])),
        st.tuples(st.just("timeline_trim"), KEYS, st.integers(0, 6).map(float)),
        st.tuples(st.just("mark_seen"), st.sampled_from(["e1", "e2", "e3"]), st.integers(0, 5).map(float)),
        st.tuples(st.just("doc_put"), KEYS, st.sampled_from([b"d1", b"d2", None])),
        st.tuples(st.just("expire"), st.sampled_from([30.0, 90.0])),
        st.tuples(st.just("commit")),
        st.tuples(st.just("read")),
    ),
    max_size=50,
)


def _apply(store: StateStore, ns: str, op: tuple[Any, ...]) -> Any:
    name, args = op[0], op[1:]
    calls: dict[str, Callable[..., Any]] = {
        "add": lambda k, m, f, d: store.add(ns, k, m, {f: d}),
        "put_max": lambda k, m, f, v: store.put_max(ns, k, m, f, v),
        "add_decayed": lambda k, m, v, ts: store.add_decayed(ns, k, m, "f", v, ts, 100.0),
        "window_add": lambda k, m, w, d: store.window_add(ns, k, m, w, {"n": d}),
        "add_distinct": lambda k, m, v, w: store.add_distinct(ns, k, m, v, w),
        "rank_add": lambda r, m, d, w: store.rank_add(ns, r, m, d, w),
        "rank_remove": lambda r, m: store.rank_remove(ns, r, m),
        "push_bounded": lambda k, sk, cap: store.push_bounded(ns, k, sk, list(sk), cap),
        "set_add": lambda k, v: store.set_add(ns, k, v),
        "timeline_add": lambda k, ts, v: store.timeline_add(ns, k, ts, v),
        "timeline_trim": lambda k, ts: store.timeline_trim(ns, k, ts),
        "mark_seen": lambda e, ts: store.mark_seen(f"{ns}-{e}", ts),
        "doc_put": lambda k, v: store.doc_put(ns, k, v),
        "expire": lambda before: store.expire_windows(ns, before),
    }
    return calls[name](*args)


def _everything(store: StateStore, ns: str) -> dict[str, Any]:
    keys, smalls = ("u1", "u2"), ("", "a", ("t", 1.0))
    return {
        "keys": sorted(store.keys(ns)),
        "members": {k: {m: dict(f) for m, f in store.members(ns, k).items()} for k in keys},
        "fields": [store.fields(ns, k, m) for k in keys for m in smalls],
        "decayed": [round(store.read_decayed(ns, k, m, "f", 600.0, 100.0), 9) for k in keys for m in smalls],
        "windows": {k: {s: dict(f) for s, f in store.window_members(ns, k).items()} for k in keys},
        "starts": list(store.window_starts(ns)),
        "window_keys": [sorted(store.window_keys(ns, w)) for w in (0.0, 60.0, 120.0)],
        "distinct": [
            store.count_distinct(ns, k, m, w) for k in keys for m in smalls for w in (None, 0.0, 60.0)
        ],
        "rankings": {r: (ranking_list(store, ns, r), store.rank_size(ns, r)) for r in smalls},
        "scores": [store.rank_score(ns, r, m) for r in smalls for m in ("a", "b", "é")],
        "names": sorted(map(repr, store.rank_names(ns))),
        "bounded": {k: list(store.bounded(ns, k)) for k in keys},
        "sets": {k: sorted(store.set_members(ns, k)) for k in keys},
        "timelines": {k: store.timeline_range(ns, k, -math.inf, math.inf) for k in keys},
        "last": [store.timeline_last(ns, k) for k in keys],
        "seen": [store.seen(f"{ns}-{e}") for e in ("e1", "e2", "e3")],
        "docs": store.docs(ns),
        "doc": [store.doc_get(ns, k) for k in keys],
    }


@PROPERTY_SETTINGS
@given(ops=BATCH_OPS)
def test_batches_read_like_the_memory_store(store: StateStore, ops: list[tuple[Any, ...]]) -> None:
    ns = fresh_ns("batch")
    reference = open_state("memory://")
    store.begin()
    for generated in ops:
        op = generated
        if op[0] == "commit":
            store.commit()
            store.begin()
        elif op[0] == "read":
            assert _everything(store, ns) == _everything(reference, ns)
        else:
            assert _apply(store, ns, op) == _apply(reference, ns, op), op
    assert _everything(store, ns) == _everything(reference, ns)
    store.commit()
    assert _everything(store, ns) == _everything(reference, ns)


@PROPERTY_SETTINGS
@given(
    pushes=st.lists(
        st.tuples(st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -0.0, 2.0])), st.integers(0, 99)),
        max_size=40,
    ),
    sort_as_tuple=st.booleans(),
    cap=st.integers(1, 6),
)
def test_push_bounded_with_tied_keys_matches_memory(
    store: StateStore, pushes: list[tuple[float, int]], sort_as_tuple: bool, cap: int
) -> None:
    ns = fresh_ns("ties")
    reference = open_state("memory://")
    for key, payload in pushes:
        sort_key: Any = (key, "x") if sort_as_tuple else key
        for target in (store, reference):
            target.push_bounded(ns, "k", sort_key, payload, cap)
    assert list(store.bounded(ns, "k")) == list(reference.bounded(ns, "k"))


def test_ranking_order_of_non_ascii_members_is_by_code_point(store: StateStore) -> None:
    ns = fresh_ns()
    members = ["z", "é", "e\u0301", "€", "😀", "\u00ff", "\u0100", "Z", "", "a b", "\uffff", "\U0010ffff"]
    for member in members:
        store.rank_add(ns, "r", member, 1.0)
    store.rank_add(ns, "r", "top", 2.0)
    assert ranking_list(store, ns, "r") == [("top", 2.0)] + [(m, 1.0) for m in sorted(members)]


def test_members_and_names_round_trip_with_their_types(store: StateStore) -> None:
    ns = fresh_ns()
    names: list[Hashable] = ["", "r", 7200.0, 3, ("category", 7200.0, "books"), ("x", None), (("n",), 1)]
    for name in names:
        store.rank_add(ns, name, "m", 1.0)
        store.add(ns, "k", name, {"n": 1.0})
        store.window_add(ns, "k", name, 7200.0, {"n": 1.0})
    assert sorted(map(repr, store.rank_names(ns))) == sorted(map(repr, names))
    got = list(store.members(ns, "k"))
    assert sorted(map(repr, got)) == sorted(map(repr, names))
    assert {type(m) for m in got} == {str, float, int, tuple}
    assert sorted(map(repr, store.window_members(ns, "k"))) == sorted(repr((n, 7200.0)) for n in names)


# ---------------------------------------------------------------------------------------------------------
# Redis only: what other clients see of a batch, key placement, the server going away


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a new, empty store on the test server."""
    return f"{redis_server.url}?prefix=redis-only-{next(_prefixes)}"


def _write_one_of_each(store: StateStore, ns: str) -> None:
    store.add(ns, "u", "m", {"n": 1.0})
    store.add_decayed(ns, "u", "m", "f", 1.0, 10.0, 60.0)
    store.window_add(ns, "u", "m", 0.0, {"n": 1.0})
    store.add_distinct(ns, "u", "m", "v", 0.0)
    store.add_distinct(ns, "u", "m", "v")
    store.rank_add(ns, ("all", 0.0), "u", 1.0, 0.0)
    store.push_bounded(ns, "u", 1, "v", 3)
    store.set_add(ns, "u", "v")
    store.timeline_add(ns, "u", 1.0, "v")
    store.doc_put(ns, "u", b"v")
    store.mark_seen(f"{ns}-event", 1.0)


def _visible(store: StateStore, ns: str) -> list[Any]:
    return [
        store.fields(ns, "u", "m"),
        store.read_decayed(ns, "u", "m", "f", 10.0, 60.0),
        dict(store.window_members(ns, "u")),
        store.count_distinct(ns, "u", "m", 0.0),
        store.count_distinct(ns, "u", "m"),
        ranking_list(store, ns, ("all", 0.0)),
        list(store.bounded(ns, "u")),
        sorted(store.set_members(ns, "u")),
        store.timeline_range(ns, "u", 0.0, 2.0),
        store.docs(ns),
        store.seen(f"{ns}-event"),
        sorted(store.keys(ns)),
        list(store.window_starts(ns)),
        list(store.rank_names(ns)),
    ]


NOTHING: list[Any] = [None, 0.0, {}, 0, 0, [], [], [], [], {}, False, [], [], []]


def test_redis_other_clients_see_a_batch_only_when_it_is_committed(redis_url: str) -> None:
    ns = fresh_ns()
    writer, reader = open_state(redis_url), open_state(redis_url)
    writer.begin()
    _write_one_of_each(writer, ns)
    assert _visible(reader, ns) == NOTHING
    assert _visible(writer, ns) != NOTHING  # the writer reads its own pending writes
    writer.commit()
    assert _visible(reader, ns) == _visible(writer, ns)
    assert _visible(reader, ns)[:4] == [{"n": 1.0}, 1.0, {("m", 0.0): {"n": 1.0}}, 1]


def test_redis_a_batch_never_committed_leaves_nothing(redis_url: str) -> None:
    ns = fresh_ns()
    writer = open_state(redis_url)
    writer.begin()
    _write_one_of_each(writer, ns)
    writer.begin()  # the previous batch was never committed: dropped, as if the process had died
    writer.commit()
    crashed = open_state(redis_url)
    crashed.begin()
    _write_one_of_each(crashed, ns)
    del crashed
    assert _visible(open_state(redis_url), ns) == NOTHING


def test_redis_writes_outside_a_batch_apply_at_once(redis_url: str) -> None:
    ns = fresh_ns()
    writer, reader = open_state(redis_url), open_state(redis_url)
    _write_one_of_each(writer, ns)
    assert _visible(reader, ns) == _visible(writer, ns) != NOTHING


def test_redis_keys_of_one_entity_share_its_hash_slot(redis_server: RedisServer, redis_url: str) -> None:
    ns = fresh_ns("slots")
    store = open_state(redis_url)
    _write_one_of_each(store, ns)
    store.add(ns, "u|with{braces}", "m", {"n": 1.0})
    prefix = redis_url.partition("prefix=")[2]
    names = [n.decode() for n in redis.Redis.from_url(redis_server.url).scan_iter(match=f"{prefix}:*")]
    entity = [n for n in names if f"{{{ns}|u}}" in n]
    assert len(entity) >= 10  # counters, decayed, window, distinct x2, bounded x3, set, timeline x2
    assert len({key_slot(n.encode()) for n in entity}) == 1
    assert key_slot(entity[0].encode()) == key_slot(f"{ns}|u".encode())
    assert any(f"{{{ns}|u%7Cwith%7Bbraces%7D}}:c" in n for n in names)


def test_redis_expiry_retries_when_a_writer_adds_to_an_expiring_window(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key added to a window between the expiry's read of the window and its EXEC is expired too."""
    ns = fresh_ns()
    store, writer = RedisState.from_url(redis_url), open_state(redis_url)
    store.window_add(ns, "a", "m", 0.0, {"n": 1.0})
    client = store._r
    real_pipeline = client.pipeline
    late_writes = [lambda: writer.window_add(ns, "late", "m", 0.0, {"n": 1.0})]

    def pipeline(transaction: bool = True) -> Any:
        pipe = real_pipeline(transaction)
        if transaction or not late_writes:
            return pipe
        read = pipe.execute

        def execute_then_write(raise_on_error: bool = True) -> list[Any]:
            result = read(raise_on_error)  # the expiry's read of the expiring window's keys...
            late_writes.pop()()  # ...then another worker's write lands before its EXEC
            return result

        monkeypatch.setattr(pipe, "execute", execute_then_write)
        return pipe

    monkeypatch.setattr(client, "pipeline", pipeline)
    store.expire_windows(ns, 60.0)
    assert not late_writes
    assert dict(store.window_members(ns, "late")) == {}
    assert list(store.window_keys(ns, 0.0)) == []
    assert list(store.window_starts(ns)) == []
    assert list(store.keys(ns)) == []
    assert not redis.Redis.from_url(redis_server.url).exists(store._k(ns, "late", "w:0.0"))


def test_redis_dump_formats_are_per_back_end(redis_url: str) -> None:
    with pytest.raises(ValueError, match="RedisState dump"):
        open_state(redis_url).load(open_state("memory://").dump())


def test_open_state_without_redis_py_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "freshrec.state.redis", raising=False)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install 'freshrec\[distributed\]'"):
        open_state("redis://127.0.0.1:6379/0")


def test_open_state_rejects_unknown_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported state URL"):
        open_state("mongodb://localhost")


def test_redis_server_stop_start_and_restart() -> None:
    with RedisServer() as server:
        store = open_state(f"{server.url}?prefix=outage")
        store.add("ns", "k", "m", {"n": 1.0})
        first = server.pid
        server.stop()
        assert not server.running
        with pytest.raises(redis.ConnectionError):
            store.fields("ns", "k", "m")
        server.start()
        assert server.pid != first
        assert store.fields("ns", "k", "m") is None  # no persistence: the data went with the process
        store.add("ns", "k", "m", {"n": 2.0})
        server.restart()
        assert store.fields("ns", "k", "m") is None
        store.add("ns", "k", "m", {"n": 3.0})
        assert dict(store.fields("ns", "k", "m") or {}) == {"n": 3.0}
        pid = server.pid
    assert pid is not None and not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_redis_stores_whose_prefixes_nest_stay_apart(redis_server: RedisServer) -> None:
    outer, inner = (open_state(f"{redis_server.url}?prefix={p}") for p in ("nest", "nest:inner"))
    ns = fresh_ns()
    outer.add(ns, "k", "m", {"n": 1.0})
    inner.add(ns, "k", "m", {"n": 2.0})
    inner.mark_seen("e", 1.0)
    outer.load(open_state(f"{redis_server.url}?prefix=nest-empty").dump())
    assert outer.fields(ns, "k", "m") is None
    assert dict(inner.fields(ns, "k", "m") or {}) == {"n": 2.0}
    assert inner.seen("e")
    assert pickle.loads(outer.dump())["keys"] == []  # the inner store's keys are not the outer's


def test_add_distinct_in_several_windows_at_once_answers_like_one_at_a_time(store: StateStore) -> None:
    ns = fresh_ns()
    for batched in (False, True):
        if batched:
            store.begin()
        key = f"item-{batched}"
        assert store.add_distinct(ns, key, "", "u1", 900.0)
        assert store.add_distinct_windows(ns, key, "", "u1", [900.0, 1800.0, 2700.0]) == [False, True, True]
        assert store.add_distinct_windows(ns, key, "", "u1", [1800.0, 3600.0]) == [False, True]
        assert store.add_distinct_windows(ns, key, "", "u2", [900.0]) == [True]
        assert store.add_distinct_windows(ns, key, "", "u2", []) == []
        if batched:
            store.commit()
        counts = [store.count_distinct(ns, key, "", start) for start in (900.0, 1800.0, 2700.0, 3600.0)]
        assert counts == [2, 1, 1, 1]
        assert set(store.window_keys(ns, 3600.0)) >= {key}


def test_seen_among_answers_for_many_ids_and_sees_the_pending_batch(store: StateStore) -> None:
    tag = fresh_ns("ids")
    store.mark_seen(f"{tag}-a", 10.0)
    assert store.seen_among([f"{tag}-a", f"{tag}-b"]) == {f"{tag}-a"}
    store.begin()
    store.mark_seen(f"{tag}-b", 11.0)
    assert store.seen_among([f"{tag}-a", f"{tag}-b", f"{tag}-c"]) == {f"{tag}-a", f"{tag}-b"}
    store.commit()
    assert store.seen_among([f"{tag}-b", f"{tag}-c"]) == {f"{tag}-b"}
    assert store.seen_among([]) == set()


def test_fields_of_many_keys_in_one_read(store: StateStore) -> None:
    ns = fresh_ns()
    store.add(ns, "a", "", {"w": 2.0})
    store.add(ns, "b", "", {"w": 3.0})
    store.add(ns, "b", "other", {"w": 9.0})
    assert store.fields_of_keys(ns, ["a", "b", "missing"], "") == [{"w": 2.0}, {"w": 3.0}, None]
    store.begin()
    store.add(ns, "a", "", {"w": 1.0})
    assert store.fields_of_keys(ns, ["a"], "") == [{"w": 3.0}]
    store.commit()
    assert store.fields_of_keys(ns, [], "") == []


def test_rank_scores_of_one_member_in_many_rankings(store: StateStore) -> None:
    ns = fresh_ns()
    store.rank_add(ns, "a", "x", 2.0)
    store.rank_add(ns, ("b", 1.0), "x", 5.0)
    store.rank_add(ns, "c", "y", 1.0)
    assert store.rank_scores(ns, ["a", ("b", 1.0), "c", "none"], "x") == [2.0, 5.0, None, None]
    store.begin()
    store.rank_add(ns, "c", "x", 4.0)
    assert store.rank_scores(ns, ["a", "c"], "x") == [2.0, 4.0]
    store.commit()
    assert store.rank_scores(ns, [], "x") == []


def test_timeline_window_is_range_and_last_together(store: StateStore) -> None:
    ns = fresh_ns()
    assert store.timeline_window(ns, "u", 0.0, 10.0) == ([], None)
    for ts, value in ((1.0, "a"), (5.0, "b"), (9.0, "c"), (30.0, "d")):
        store.timeline_add(ns, "u", ts, value)
    assert store.timeline_window(ns, "u", 4.0, 9.0) == ([(5.0, "b"), (9.0, "c")], 30.0)
    store.begin()
    store.timeline_add(ns, "u", 40.0, "e")
    store.timeline_add(ns, "u", 6.0, "f")
    assert store.timeline_window(ns, "u", 4.0, 9.0) == ([(5.0, "b"), (6.0, "f"), (9.0, "c")], 40.0)
    store.timeline_trim(ns, "u", 8.0)
    assert store.timeline_window(ns, "u", 0.0, 50.0) == ([(9.0, "c"), (30.0, "d"), (40.0, "e")], 40.0)
    store.commit()
    assert store.timeline_window(ns, "u", 0.0, 50.0) == ([(9.0, "c"), (30.0, "d"), (40.0, "e")], 40.0)
