"""Conformance of every state back end to the :class:`freshrec.state.base.StateStore` Protocol.

Each test runs once per back end listed in ``BACKENDS`` and uses nothing but the Protocol's methods (plus a
``dump`` → ``load`` round trip), so a new back end is checked by adding its URL there. Property-based
tests give every generated example its own namespace, so they need no way to empty a store between
examples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freshrec.state import StateStore, open_state

#: State back ends under test, by URL (``redis://...`` joins here when it exists).
BACKENDS = [pytest.param("memory://", id="memory")]

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_namespaces = itertools.count()


def fresh_ns(prefix: str = "ns") -> str:
    """A namespace no earlier example or test of this process used."""
    return f"{prefix}-{next(_namespaces)}"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    yield open_state(request.param)


@pytest.fixture
def other_store(request: pytest.FixtureRequest, store: StateStore) -> StateStore:
    """A second, empty store of the same back end as ``store``."""
    url: str = request.node.callspec.params["store"]
    return open_state(url)


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
