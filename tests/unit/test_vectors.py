"""Vector indexes (:mod:`freshrec.vectors`): the exact index against NumPy brute force, the ANN index and
:class:`AutoIndex` against the exact one.

Exact-order tests use vectors with four components of ±0.5 (unit length exactly, every cosine a multiple of
0.25 computed without rounding), drawn from a small pool so that equal vectors — and tied scores — are common.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from freshrec.vectors import AnnIndex, AutoIndex, ExactIndex, VectorIndex, open_index

F32 = NDArray[np.float32]
SMALL_DIM = 8


def half_vector(positions: tuple[int, ...], signs: tuple[int, ...]) -> F32:
    v = np.zeros(SMALL_DIM, dtype=np.float32)
    for p, s in zip(positions, signs, strict=True):
        v[p] = 0.5 * s
    return v


POOL: list[F32] = [
    half_vector(positions, signs)
    for positions, signs in itertools.islice(
        zip(
            itertools.cycle(itertools.combinations(range(SMALL_DIM), 4)),
            itertools.product((1, -1), repeat=4),
        ),
        24,
    )
]
IDS = [f"i{n:02d}" for n in range(16)]


def brute_force(
    model: dict[str, F32], query: F32, k: int, exclude: Collection[str] = ()
) -> list[tuple[str, float]]:
    """Cosine of every stored vector in float64, sorted by similarity desc then id asc."""
    q = query.astype(np.float64) / np.linalg.norm(query.astype(np.float64))
    scored = [
        (item_id, float(np.dot(v.astype(np.float64) / np.linalg.norm(v.astype(np.float64)), q)))
        for item_id, v in model.items()
        if item_id not in exclude
    ]
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored[:k]


def clustered(rng: np.random.Generator, n: int, dim: int = 384, clusters: int = 50) -> F32:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)).astype(np.float32) * 0.05
    out: F32 = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def ann_auto(ids: list[str], vectors: F32) -> AutoIndex:
    """An AutoIndex with its threshold forced low, filled in batches and fully switched to the graph."""
    index = AutoIndex(vectors.shape[1], exact_threshold=100, migrate_batch=500)
    for start in range(0, len(ids), 500):
        index.upsert(ids[start : start + 500], vectors[start : start + 500])
    index.finish_migration()
    assert index.mode == "ann"
    return index


def recall_at_10(index: VectorIndex, reference: VectorIndex, queries: F32) -> float:
    hits = 0
    for q in queries:
        truth = {item_id for item_id, _ in reference.search(q, 10)}
        hits += len(truth & {item_id for item_id, _ in index.search(q, 10)})
    return hits / (10 * len(queries))


# ---------------------------------------------------------------------------------------------------------
# Exact index = brute force, ties and excludes included

op = st.one_of(
    st.tuples(
        st.just("upsert"),
        st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, len(POOL) - 1)), min_size=1, max_size=6),
    ),
    st.tuples(st.just("remove"), st.lists(st.sampled_from([*IDS, "never-added"]), min_size=1, max_size=4)),
)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(op, max_size=25),
    queries=st.lists(
        st.tuples(
            st.integers(0, len(POOL) - 1),
            st.integers(0, 20),
            st.sets(st.sampled_from([*IDS, "never-added"]), max_size=5),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_exact_index_equals_brute_force(
    ops: list[tuple[str, list[tuple[str, int]] | list[str]]],
    queries: list[tuple[int, int, set[str]]],
) -> None:
    index = ExactIndex(SMALL_DIM, capacity=1)
    model: dict[str, F32] = {}
    for kind, args in ops:
        if kind == "upsert":
            pairs = [pair for pair in args if isinstance(pair, tuple)]
            index.upsert([i for i, _ in pairs], np.stack([POOL[p] for _, p in pairs]))
            model.update((i, POOL[p]) for i, p in pairs)
        else:
            removed = [i for i in args if isinstance(i, str)]
            index.remove(removed)
            for item_id in removed:
                model.pop(item_id, None)
        assert len(index) == len(model)
    for item_id in IDS:
        got, want = index.vector(item_id), model.get(item_id)
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            np.testing.assert_array_equal(got, want)
    copy = ExactIndex(SMALL_DIM)
    copy.load(index.dump())
    for p, k, exclude in queries:
        expected = brute_force(model, POOL[p], k, exclude)
        assert index.search(POOL[p], k, exclude) == expected
        assert copy.search(POOL[p], k, exclude) == expected
        # not unit length (a user centroid): still a cosine
        assert index.search(POOL[p] * np.float32(3), k, exclude) == expected


def test_exact_index_on_random_vectors_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)
    ids = [f"item-{n}" for n in range(3000)]
    index = ExactIndex(64)
    index.upsert(ids, vectors)
    index.remove(ids[::7])
    model = {i: v for i, v in zip(ids, vectors, strict=True) if i not in set(ids[::7])}
    for q in rng.standard_normal((20, 64)).astype(np.float32):
        want = brute_force(model, q, 25, ids[1:40])
        got = index.search(q, 25, ids[1:40])
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)


def test_exact_index_ties_break_by_id_even_past_k() -> None:
    index = ExactIndex(SMALL_DIM)
    ids = [f"t{n:03d}" for n in range(200)]
    index.upsert(ids[::-1], np.stack([POOL[0]] * 200))  # all equal, added in reverse id order
    index.remove(["t000", "t050"])  # swap-removes shuffle the rows
    assert [i for i, _ in index.search(POOL[0], 5)] == ["t001", "t002", "t003", "t004", "t005"]
    assert [i for i, _ in index.search(POOL[0], 3, exclude={"t001", "t003"})] == ["t002", "t004", "t005"]
    assert all(score == 1.0 for _, score in index.search(POOL[0], 198))


def test_exact_index_shrinks_and_grows() -> None:
    index = ExactIndex(SMALL_DIM)
    ids = [str(n) for n in range(5000)]
    index.upsert(ids, np.stack([POOL[n % len(POOL)] for n in range(5000)]))
    index.remove(ids[:4990])
    assert len(index) == 10
    assert sorted(i for i, _ in index.search(POOL[0], 100)) == sorted(ids[4990:])
    index.upsert(ids[:3], np.stack(POOL[:3]))
    assert len(index) == 13


# ---------------------------------------------------------------------------------------------------------
# ANN (through AutoIndex with its threshold forced low)


@pytest.fixture(scope="module")
def catalog() -> tuple[list[str], F32, F32]:
    rng = np.random.default_rng(11)
    vectors = clustered(rng, 5200)
    return [f"item-{n}" for n in range(5000)], vectors[:5000], vectors[5000:]


@pytest.fixture(scope="module")
def ann_and_exact(catalog: tuple[list[str], F32, F32]) -> tuple[AutoIndex, ExactIndex]:
    ids, vectors, _ = catalog
    exact = ExactIndex(vectors.shape[1])
    exact.upsert(ids, vectors)
    return ann_auto(ids, vectors), exact


def test_ann_recall_at_10_on_clustered_data(
    catalog: tuple[list[str], F32, F32], ann_and_exact: tuple[AutoIndex, ExactIndex]
) -> None:
    _, _, queries = catalog
    ann, exact = ann_and_exact
    assert len(ann) == len(exact) == 5000
    assert recall_at_10(ann, exact, queries) >= 0.95


def test_ann_excludes_respected_even_when_they_are_the_top_results(
    catalog: tuple[list[str], F32, F32], ann_and_exact: tuple[AutoIndex, ExactIndex]
) -> None:
    _, _, queries = catalog
    ann, exact = ann_and_exact
    hits = 0
    for q in queries[:50]:
        top = [i for i, _ in exact.search(q, 30)]
        got = ann.search(q, 10, exclude=top)
        assert len(got) == 10
        assert not set(top) & {i for i, _ in got}
        want = {i for i, _ in exact.search(q, 10, exclude=top)}
        hits += len(want & {i for i, _ in got})
    assert hits / 500 >= 0.9
    assert ann.search(queries[0], 10, exclude=[i for i, _ in exact.search(queries[0], 5000)]) == []


def test_ann_results_are_sorted_and_ask_for_more_than_k(
    catalog: tuple[list[str], F32, F32], ann_and_exact: tuple[AutoIndex, ExactIndex]
) -> None:
    _, _, queries = catalog
    ann, exact = ann_and_exact
    got = ann.search(queries[1], 300, exclude={"item-1"})
    assert len(got) == 300
    assert got == sorted(got, key=lambda pair: (-pair[1], pair[0]))
    assert len({i for i, _ in got} & {i for i, _ in exact.search(queries[1], 300)}) >= 270
    top = exact.search(queries[1], 1)[0]
    assert ann.search(queries[1], 1)[0][0] == top[0]
    assert ann.search(queries[1], 1)[0][1] == pytest.approx(top[1], abs=1e-5)


def test_k_larger_than_size_returns_everything_in_exact_order() -> None:
    rng = np.random.default_rng(5)
    vectors = clustered(rng, 400, dim=32, clusters=5)
    ids = [f"x{n}" for n in range(400)]
    exact = ExactIndex(32)
    exact.upsert(ids, vectors)
    ann = ann_auto(ids, vectors)
    q = vectors[0]
    for index in (exact, ann):
        everything = index.search(q, 1000, exclude={"x0", "x1", "absent"})
        assert len(everything) == 398
        assert [i for i, _ in everything] == [i for i, _ in exact.search(q, 1000, exclude={"x0", "x1"})]
        assert index.search(q, 0) == []
    assert [i for i, _ in ann.search(q, 398, exclude=ids[:-1])] == ["x399"]


def test_ann_removed_never_returned_and_replaced_vectors_take_effect(
    catalog: tuple[list[str], F32, F32],
) -> None:
    ids, vectors, queries = catalog
    rng = np.random.default_rng(17)
    ann = ann_auto(ids[:2000], vectors[:2000])
    exact = ExactIndex(vectors.shape[1])
    exact.upsert(ids[:2000], vectors[:2000])
    removed = [ids[n] for n in rng.choice(2000, 300, replace=False)]
    kept = [i for i in ids[:2000] if i not in set(removed)]
    replaced = kept[:200]
    new_vectors = clustered(np.random.default_rng(99), 200)  # other clusters
    for index in (ann, exact):
        index.remove(removed[:150])
        index.upsert(replaced, new_vectors)
        index.remove(removed[150:])
        index.upsert(ids[2000:2500], vectors[2000:2500])
    assert len(ann) == len(exact) == 2200
    dead = set(removed)
    for q in [*queries, *vectors[:100]]:
        assert not dead & {i for i, _ in ann.search(q, 50)}
    for item_id, v in zip(replaced, new_vectors, strict=True):
        stored = ann.vector(item_id)
        assert stored is not None
        np.testing.assert_allclose(stored, v / np.linalg.norm(v), atol=1e-6)
        [(top_id, top_score)] = ann.search(v, 1)
        assert top_id == item_id
        assert top_score == pytest.approx(1.0, abs=1e-5)
    for item_id in removed:
        assert ann.vector(item_id) is None
    # the old vector of a replaced id scores it by its new vector
    old = vectors[ids.index(replaced[0])]
    scores = dict(ann.search(old, len(ann)))
    new = new_vectors[0] / np.linalg.norm(new_vectors[0])
    assert scores[replaced[0]] == pytest.approx(float(new @ old), abs=1e-4)
    assert scores[replaced[0]] < 0.5
    assert recall_at_10(ann, exact, queries) >= 0.95


# ---------------------------------------------------------------------------------------------------------
# AutoIndex switching, snapshots, input checks


def test_auto_index_switches_transparently() -> None:
    rng = np.random.default_rng(23)
    vectors = clustered(rng, 1500, dim=48, clusters=10)
    ids = [f"s{n}" for n in range(1500)]
    exact = ExactIndex(48)
    auto = AutoIndex(48, exact_threshold=500, migrate_batch=300)
    modes = []
    for start in range(0, 1500, 100):
        auto.upsert(ids[start : start + 100], vectors[start : start + 100])
        exact.upsert(ids[start : start + 100], vectors[start : start + 100])
        modes.append(auto.mode)
        assert len(auto) == len(exact)
        if auto.mode != "ann":  # searches stay exact until the graph holds everything
            q = vectors[start]
            assert auto.search(q, 10, {ids[0]}) == exact.search(q, 10, {ids[0]})
    assert modes[:5] == ["exact"] * 5
    assert "migrating" in modes
    assert modes[-1] == "ann"
    auto.remove(ids[:10])
    exact.remove(ids[:10])
    assert len(auto) == 1490
    assert recall_at_10(auto, exact, vectors[::50]) >= 0.95


def test_open_index_defaults() -> None:
    index = open_index(384)
    assert isinstance(index, AutoIndex)
    assert index.dim == 384
    assert index.exact_threshold == 20_000
    assert len(index) == 0
    assert index.search(np.ones(384, dtype=np.float32), 10) == []
    custom = open_index(8, exact_threshold=0)
    custom.upsert(["a"], np.stack(POOL[:1]))
    custom.finish_migration()
    assert custom.mode == "ann"
    [(only, score)] = custom.search(POOL[0], 3)
    assert only == "a"
    assert score == pytest.approx(1.0)


@pytest.fixture(params=["exact", "ann"])
def filled(request: pytest.FixtureRequest) -> Iterator[tuple[AutoIndex, F32]]:
    rng = np.random.default_rng(31)
    vectors = clustered(rng, 600, dim=32, clusters=8)
    ids = [f"d{n}" for n in range(600)]
    if request.param == "ann":
        index = ann_auto(ids, vectors)
        index.remove(ids[:50])
        index.upsert(ids[50:60], vectors[:10])
    else:
        index = AutoIndex(32)
        index.upsert(ids, vectors)
        index.remove(ids[:50])
    yield index, vectors


def test_dump_load_round_trip(filled: tuple[AutoIndex, F32]) -> None:
    index, vectors = filled
    blob = index.dump()
    again = AutoIndex(32, exact_threshold=index.exact_threshold)
    again.load(blob)
    assert again.mode == index.mode
    assert len(again) == len(index)
    for q in vectors[::40]:
        assert again.search(q, 20, {"d70"}) == index.search(q, 20, {"d70"})
    for item_id in ("d0", "d55", "d599"):
        a, b = again.vector(item_id), index.vector(item_id)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            np.testing.assert_array_equal(a, b)
    # the loaded index keeps taking writes
    again.upsert(["d0"], vectors[599:600])
    assert again.search(vectors[599], 2)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert {i for i, _ in again.search(vectors[599], 2)} == {"d0", "d599"}
    assert again.dump() != blob


def test_load_rejects_bad_snapshots(filled: tuple[AutoIndex, F32]) -> None:
    index, _ = filled
    blob = index.dump()
    for bad in (b"", b"nope" + blob[4:], blob[:-1], blob + b"x", blob[:20]):
        with pytest.raises(ValueError):
            AutoIndex(32).load(bad)
    with pytest.raises(ValueError, match="dim"):
        AutoIndex(16).load(blob)


@pytest.mark.parametrize("make", [lambda: ExactIndex(4), lambda: AnnIndex(4), lambda: AutoIndex(4)])
def test_bad_input_is_refused_and_stores_nothing(make: object) -> None:
    assert callable(make)
    index = make()
    ok = np.eye(4, dtype=np.float32)
    for ids, vectors in (
        (["a", "b"], ok[:1]),  # count mismatch
        (["a"], np.ones((1, 3), dtype=np.float32)),  # wrong dim
        (["a", "b"], np.array([[1, 0, 0, 0], [np.nan, 0, 0, 0]], dtype=np.float32)),
        (["a", "b"], np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32)),  # zero length
        (["a", ""], ok[:2]),
    ):
        with pytest.raises(ValueError):
            index.upsert(ids, vectors)
        assert len(index) == 0
    with pytest.raises(TypeError):
        index.upsert("ab", ok[:2])
    index.upsert(["a", "b", "a"], ok[:3])  # repeated id: the last row wins
    assert len(index) == 2
    [(top, score)] = index.search(ok[2], 1)
    assert top == "a"
    assert score == pytest.approx(1.0)
    for query, k in ((ok[0], -1), (np.zeros(4, dtype=np.float32), 1), (np.ones(5, dtype=np.float32), 1)):
        with pytest.raises(ValueError):
            index.search(query, k)


def test_ann_float16_storage_recall_and_round_trip(catalog: tuple[list[str], F32, F32]) -> None:
    ids, vectors, queries = catalog
    exact = ExactIndex(vectors.shape[1])
    exact.upsert(ids[:2000], vectors[:2000])
    half = AnnIndex(vectors.shape[1], dtype="f16")
    half.upsert(ids[:2000], vectors[:2000])
    assert recall_at_10(half, exact, queries[:100]) >= 0.95
    again = AnnIndex(vectors.shape[1])  # the snapshot, not the constructor, decides the storage
    again.load(half.dump())
    assert again.search(queries[0], 10) == half.search(queries[0], 10)
    stored = again.vector(ids[0])
    assert stored is not None
    np.testing.assert_allclose(stored, vectors[0], atol=1e-3)


def test_ann_snapshot_with_a_bad_graph_is_refused() -> None:
    index = AnnIndex(8)
    index.upsert(["a", "b"], np.stack(POOL[:2]))
    blob = index.dump()
    start = blob.index(b'[["a",0],["b",1]]') + len(b'[["a",0],["b",1]]')  # the usearch graph follows the ids
    for filler in (b"\0", b"\xff"):
        with pytest.raises(ValueError):
            AnnIndex(8).load(blob[:start] + filler * (len(blob) - start))
    AnnIndex(8).load(blob)


def test_a_bulk_import_in_chunks_and_a_restored_snapshot_end_on_the_graph() -> None:
    """No index may stay half-migrated (exact search over a large catalog) after a bulk load or a restart."""
    rng = np.random.default_rng(5)
    vectors = clustered(rng, 3000, dim=16, clusters=8)
    ids = [f"b{n}" for n in range(3000)]
    auto = AutoIndex(16, exact_threshold=1000, migrate_batch=100)
    for start in range(0, 3000, 500):  # chunks larger than migrate_batch
        auto.upsert(ids[start : start + 500], vectors[start : start + 500])
    assert auto.mode == "ann"

    small = AutoIndex(16, exact_threshold=5000)
    small.upsert(ids, vectors)
    assert small.mode == "exact"
    restored = AutoIndex(16, exact_threshold=1000, migrate_batch=100)
    restored.load(small.dump())
    assert restored.mode == "ann" and len(restored) == 3000
