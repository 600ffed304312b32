"""Ranking metrics and the stratified split: worked examples, a DuckDB re-implementation, properties."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freshrec.evaluation.metrics import (
    Interaction,
    ReplayScores,
    catalog_coverage,
    hit_rate_at_k,
    map_at_k,
    map_at_k_capped,
    mrr,
    ms_scores,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    replay_scores,
    stratified_split,
    target_ndcg_at_k,
)

Recs = dict[str, list[str]]
Relevant = dict[str, set[str]]
EPS = 1e-12


def _all_ms(recommended: Recs, relevant: Relevant, k: int) -> tuple[float, ...]:
    return (
        precision_at_k(recommended, relevant, k),
        recall_at_k(recommended, relevant, k),
        ndcg_at_k(recommended, relevant, k),
        map_at_k(recommended, relevant, k),
        map_at_k_capped(recommended, relevant, k),
    )


# --- protocol metrics, worked by hand ------------------------------------------------------------------


def test_two_hits_in_three() -> None:
    # recommended [a, b, c], relevant {a, c}, k = 3: hits at ranks 1 and 3
    precision, recall, ndcg, ap, ap_capped = _all_ms({"u": ["a", "b", "c"]}, {"u": {"a", "c"}}, 3)
    assert precision == pytest.approx(2 / 3, abs=EPS)  # 2 hits / k
    assert recall == pytest.approx(1.0, abs=EPS)  # 2 hits / 2 relevant
    # DCG = 1/log2(2) + 1/log2(4); ideal over min(3, 2) = 2 items: 1/log2(2) + 1/log2(3)
    assert ndcg == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), abs=EPS)
    assert ap == pytest.approx((1 / 1 + 2 / 3) / 2, abs=EPS)  # precisions at the hits / |relevant|
    assert ap_capped == pytest.approx((1 / 1 + 2 / 3) / 2, abs=EPS)  # min(k, |relevant|) = 2 as well


def test_truncation_and_the_two_map_denominators() -> None:
    # recommended [x, a, b, y], relevant {a, b, c}, k = 2: only [x, a] counts, one hit at rank 2
    precision, recall, ndcg, ap, ap_capped = _all_ms({"u": ["x", "a", "b", "y"]}, {"u": {"a", "b", "c"}}, 2)
    assert precision == pytest.approx(1 / 2, abs=EPS)
    assert recall == pytest.approx(1 / 3, abs=EPS)
    # ideal over min(2, 3) = 2 items
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)), abs=EPS)
    assert ap == pytest.approx((1 / 2) / 3, abs=EPS)  # divided by |relevant| = 3
    assert ap_capped == pytest.approx((1 / 2) / 2, abs=EPS)  # divided by min(k, |relevant|) = 2


def test_fewer_recommendations_than_k_still_divide_precision_by_k() -> None:
    # recommended [a], relevant {a}, k = 10
    precision, recall, ndcg, ap, ap_capped = _all_ms({"u": ["a"]}, {"u": {"a"}}, 10)
    assert precision == pytest.approx(1 / 10, abs=EPS)
    assert (recall, ndcg, ap, ap_capped) == pytest.approx((1.0, 1.0, 1.0, 1.0), abs=EPS)


def test_which_users_are_averaged() -> None:
    recommended = {
        "hit": ["a", "b", "c"],  # as in test_two_hits_in_three
        "miss": ["d", "e", "f"],  # scored, no hit: counts 0
        "no_truth": ["a"],  # no relevant items: not scored
        "empty": [],  # no recommendations: not scored
    }
    relevant = {"hit": {"a", "c"}, "miss": {"g"}, "empty": {"a"}, "no_list": {"a"}, "no_truth": set()}
    precision, recall, ndcg, ap, _ = _all_ms(recommended, relevant, 3)
    assert precision == pytest.approx((2 / 3 + 0) / 2, abs=EPS)
    assert recall == pytest.approx((1 + 0) / 2, abs=EPS)
    assert ndcg == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)) / 2, abs=EPS)
    assert ap == pytest.approx((1 / 1 + 2 / 3) / 2 / 2, abs=EPS)


def test_nothing_to_score_is_zero() -> None:
    assert _all_ms({"u": ["a"]}, {"v": {"a"}}, 10) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert _all_ms({}, {}, 10) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_ms_scores_keys_and_values() -> None:
    recommended, relevant = {"u": ["x", "a", "b", "y"]}, {"u": {"a", "b", "c"}}
    assert ms_scores(recommended, relevant, 2) == {
        "precision@2": precision_at_k(recommended, relevant, 2),
        "recall@2": recall_at_k(recommended, relevant, 2),
        "ndcg@2": ndcg_at_k(recommended, relevant, 2),
        "map": map_at_k(recommended, relevant, 2),
    }
    assert list(ms_scores(recommended, relevant)) == ["precision@10", "recall@10", "ndcg@10", "map"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        precision_at_k({"u": ["a", "a"]}, {"u": {"a"}}, 2)
    with pytest.raises(ValueError, match="k must"):
        precision_at_k({"u": ["a"]}, {"u": {"a"}}, 0)
    # a repeat beyond the first k is not looked at
    assert precision_at_k({"u": ["a", "b", "a"]}, {"u": {"a"}}, 2) == 0.5


# --- replay metrics, worked by hand --------------------------------------------------------------------

TRIALS: list[tuple[list[str], str]] = [
    (["a", "b", "c"], "b"),  # rank 2
    (["c", "d", "e"], "z"),  # not there
    (["a", "e", "f", "g"], "g"),  # rank 4: beyond k = 3, still in the list
    (["f"], "f"),  # rank 1
]


def test_replay_by_hand() -> None:
    scores = ReplayScores(k=3, catalog_size=10)
    scores.add_many(TRIALS)
    assert scores.trials == 4
    assert scores.result() == pytest.approx(
        {
            "hr@3": 2 / 4,
            "ndcg@3": (1 / math.log2(3) + 1) / 4,
            "mrr": (1 / 2 + 0 + 1 / 4 + 1) / 4,
            "coverage": 6 / 10,  # a b c d e f among the first 3; g only at rank 4
        },
        abs=EPS,
    )
    assert hit_rate_at_k(TRIALS, 3) == pytest.approx(0.5, abs=EPS)
    assert target_ndcg_at_k(TRIALS, 3) == pytest.approx((1 / math.log2(3) + 1) / 4, abs=EPS)
    assert mrr(TRIALS) == pytest.approx(0.4375, abs=EPS)
    assert catalog_coverage(TRIALS, 10, 3) == pytest.approx(0.6, abs=EPS)
    # a different K changes the keys and what is counted
    assert replay_scores(TRIALS, 4, 10) == pytest.approx(
        {
            "hr@4": 3 / 4,
            "ndcg@4": (1 / math.log2(3) + 1 / math.log2(5) + 1) / 4,
            "mrr": 0.4375,
            "coverage": 7 / 10,
        },
        abs=EPS,
    )


def test_replay_catalog_size() -> None:
    scores = ReplayScores(k=3)
    scores.add_many(TRIALS)
    # without a size: the distinct items seen, recommended or target (a..g and z)
    assert scores.result()["coverage"] == pytest.approx(6 / 8, abs=EPS)
    assert scores.result(catalog_size=12)["coverage"] == pytest.approx(6 / 12, abs=EPS)


def test_replay_defaults_and_empty() -> None:
    assert ReplayScores().result() == {"hr@10": 0.0, "ndcg@10": 0.0, "mrr": 0.0, "coverage": 0.0}
    with pytest.raises(ValueError, match="k must"):
        ReplayScores(0)


def test_replay_first_occurrence_counts() -> None:
    assert replay_scores([(["x", "t", "t"], "t")], 10, 3) == pytest.approx(
        {"hr@10": 1.0, "ndcg@10": 1 / math.log2(3), "mrr": 0.5, "coverage": 2 / 3}, abs=EPS
    )


# --- the same metrics by SQL ---------------------------------------------------------------------------

MS_SQL = """
WITH rec_users AS (SELECT DISTINCT uid FROM recs),
rel_counts AS (SELECT uid, COUNT(*) AS n_rel FROM rel GROUP BY uid),
scored AS (SELECT uid, n_rel FROM rel_counts JOIN rec_users USING (uid)),
hits AS (
    SELECT r.uid, r.pos, ROW_NUMBER() OVER (PARTITION BY r.uid ORDER BY r.pos) AS hit_no
    FROM recs r JOIN rel t ON t.uid = r.uid AND t.iid = r.iid
    WHERE r.pos <= {k}
),
per_user AS (
    SELECT s.uid, s.n_rel, COUNT(h.pos) AS n_hit,
        COALESCE(SUM(1.0::DOUBLE / ln(1 + h.pos)), 0) AS dcg,
        COALESCE(SUM(h.hit_no::DOUBLE / h.pos), 0) AS ap
    FROM scored s LEFT JOIN hits h ON h.uid = s.uid
    GROUP BY s.uid, s.n_rel
),
ideal AS (
    SELECT s.uid, SUM(1.0::DOUBLE / ln(1 + g.i)) AS idcg
    FROM scored s JOIN range(1, {k} + 1) AS g(i) ON g.i <= s.n_rel
    GROUP BY s.uid
)
SELECT
    COALESCE(AVG(n_hit::DOUBLE / {k}), 0),
    COALESCE(AVG(n_hit::DOUBLE / n_rel), 0),
    COALESCE(AVG(dcg / idcg), 0),
    COALESCE(AVG(ap / n_rel), 0),
    COALESCE(AVG(ap / LEAST(n_rel, {k})), 0)
FROM per_user JOIN ideal USING (uid)
"""

REPLAY_SQL = """
WITH ranks AS (
    SELECT t.tid, MIN(r.pos) AS rnk
    FROM trials t LEFT JOIN trecs r ON r.tid = t.tid AND r.iid = t.target
    GROUP BY t.tid
)
SELECT
    AVG(CASE WHEN rnk <= {k} THEN 1.0::DOUBLE ELSE 0.0 END),
    AVG(CASE WHEN rnk <= {k} THEN 1.0::DOUBLE / log2(rnk + 1) ELSE 0.0 END),
    AVG(COALESCE(1.0::DOUBLE / rnk, 0.0)),
    (SELECT COUNT(DISTINCT iid) FROM trecs WHERE pos <= {k})::DOUBLE / {catalog}
FROM ranks
"""


def _popular_items(rng: np.random.Generator, n_items: int, size: int, unique: bool = True) -> list[str]:
    weights = 1.0 / (np.arange(n_items) + 10.0)
    picked = rng.choice(n_items, size=size, replace=not unique, p=weights / weights.sum())
    return [f"i{j}" for j in picked]


def _random_protocol_data(seed: int) -> tuple[Recs, Relevant]:
    rng = np.random.default_rng(seed)
    recommended: Recs = {}
    relevant: Relevant = {}
    for u in range(200):
        user = f"u{u}"
        draw = rng.random()
        if draw < 0.1:
            pass  # no list at all
        elif draw < 0.15:
            recommended[user] = []
        else:
            recommended[user] = _popular_items(rng, 500, int(rng.integers(1, 16)))
        draw = rng.random()
        if draw < 0.1:
            pass  # no test items at all
        elif draw < 0.15:
            relevant[user] = set()
        else:
            relevant[user] = set(_popular_items(rng, 500, int(rng.integers(1, 31))))
    return recommended, relevant


def _load(con: duckdb.DuckDBPyConnection, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    con.execute(f"CREATE TABLE {table} ({columns})")
    if rows:
        values = [list(column) for column in zip(*rows, strict=True)]
        con.execute(f"INSERT INTO {table} SELECT {', '.join('unnest(?)' for _ in values)}", values)


def _sql_ms(recommended: Recs, relevant: Relevant, k: int) -> tuple[float, ...]:
    con = duckdb.connect(":memory:")
    rec_rows = [(u, i, p) for u, items in recommended.items() for p, i in enumerate(items, 1)]
    _load(con, "recs", "uid VARCHAR, iid VARCHAR, pos INTEGER", rec_rows)
    _load(con, "rel", "uid VARCHAR, iid VARCHAR", [(u, i) for u, items in relevant.items() for i in items])
    row = con.execute(MS_SQL.format(k=int(k))).fetchone()
    assert row is not None
    return tuple(float(v) for v in row)


@pytest.mark.parametrize(("seed", "k"), [(1, 10), (2, 10), (3, 5), (4, 1), (5, 20)])
def test_protocol_metrics_equal_sql(seed: int, k: int) -> None:
    recommended, relevant = _random_protocol_data(seed)
    ours = _all_ms(recommended, relevant, k)
    scored = [u for u, items in recommended.items() if items and relevant.get(u)]
    no_hits = [u for u in scored if not set(recommended[u][:k]) & relevant[u]]
    short = [u for u in scored if len(recommended[u]) < k]
    assert len(scored) > 100 and no_hits and (short or k == 1)
    assert all(0.0 < value < 1.0 for value in ours)
    assert ours == pytest.approx(_sql_ms(recommended, relevant, k), abs=EPS, rel=0)


def _sql_replay(trials: list[tuple[list[str], str]], k: int, catalog: int) -> dict[str, float]:
    con = duckdb.connect(":memory:")
    _load(con, "trials", "tid INTEGER, target VARCHAR", [(t, target) for t, (_, target) in enumerate(trials)])
    rows = [(t, i, p) for t, (items, _) in enumerate(trials) for p, i in enumerate(items, 1)]
    _load(con, "trecs", "tid INTEGER, iid VARCHAR, pos INTEGER", rows)
    row = con.execute(REPLAY_SQL.format(k=int(k), catalog=int(catalog))).fetchone()
    assert row is not None
    return dict(zip([f"hr@{k}", f"ndcg@{k}", "mrr", "coverage"], (float(v) for v in row), strict=True))


@pytest.mark.parametrize(("seed", "k"), [(1, 10), (2, 5), (3, 1)])
def test_replay_metrics_equal_sql(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    trials: list[tuple[list[str], str]] = []
    for _ in range(3000):
        size = int(rng.integers(0, 16))
        unique = rng.random() > 0.05  # a few lists repeat an item
        trials.append((_popular_items(rng, 500, size, unique), _popular_items(rng, 500, 1)[0]))
    ours = replay_scores(trials, k, 600)
    assert 0.0 < ours[f"hr@{k}"] < 1.0 and ours["mrr"] > 0.0
    assert ours == pytest.approx(_sql_replay(trials, k, 600), abs=EPS, rel=0)


# --- properties ----------------------------------------------------------------------------------------

ITEMS = [f"i{n}" for n in range(15)]
USERS = st.sampled_from(["u", "v", "w", "x", "y"])


@settings(max_examples=200, deadline=None)
@given(
    recommended=st.dictionaries(USERS, st.lists(st.sampled_from(ITEMS), unique=True, max_size=12)),
    relevant=st.dictionaries(USERS, st.sets(st.sampled_from(ITEMS), max_size=12)),
    k=st.integers(1, 12),
)
def test_protocol_metrics_are_bounded(recommended: Recs, relevant: Relevant, k: int) -> None:
    precision, recall, ndcg, ap, ap_capped = _all_ms(recommended, relevant, k)
    for value in (precision, recall, ndcg, ap, ap_capped):
        assert -EPS <= value <= 1.0 + EPS
    assert ap <= ap_capped + EPS  # |relevant| >= min(k, |relevant|)
    assert ms_scores(recommended, relevant, k)["map"] == ap


@settings(max_examples=100, deadline=None)
@given(relevant=st.sets(st.sampled_from(ITEMS), min_size=1), k=st.integers(1, 15), data=st.data())
def test_perfect_lists(relevant: set[str], k: int, data: Any) -> None:
    ordered = data.draw(st.permutations(sorted(relevant)))
    precision, recall, ndcg, ap, ap_capped = _all_ms({"u": list(ordered)}, {"u": relevant}, k)
    shown = min(k, len(relevant))
    assert precision == pytest.approx(shown / k, abs=EPS)  # 1.0 once |relevant| >= k
    assert recall == pytest.approx(shown / len(relevant), abs=EPS)
    assert ndcg == pytest.approx(1.0, abs=EPS)
    assert ap_capped == pytest.approx(1.0, abs=EPS)
    assert ap == pytest.approx(shown / len(relevant), abs=EPS)


TRIAL = st.tuples(st.lists(st.sampled_from(ITEMS), max_size=10), st.sampled_from(ITEMS))


@settings(max_examples=200, deadline=None)
@given(trials=st.lists(TRIAL, max_size=30), k=st.integers(10, 12))
def test_replay_orderings_and_accumulation(trials: list[tuple[list[str], str]], k: int) -> None:
    one_by_one = ReplayScores(k, len(ITEMS))
    for recommended, target in trials:
        one_by_one.add(recommended, target)
    result = one_by_one.result()
    assert result == replay_scores(trials, k, len(ITEMS))
    # every list fits in k: 0 <= MRR <= NDCG <= HR <= 1
    assert 0.0 <= result["mrr"] <= result[f"ndcg@{k}"] + EPS
    assert result[f"ndcg@{k}"] <= result[f"hr@{k}"] + EPS
    assert result[f"hr@{k}"] <= 1.0
    assert 0.0 <= result["coverage"] <= 1.0


# --- stratified split ----------------------------------------------------------------------------------


def _rows(counts: dict[str, int]) -> list[Interaction]:
    rows = [
        Interaction(user, f"{user}-i{n}", 1.0 + n % 5, float(n), f"{user}-{n}")
        for user, count in counts.items()
        for n in range(count)
    ]
    order = np.random.default_rng(99).permutation(len(rows))
    return [rows[j] for j in order]  # users interleaved


def test_split_counts_follow_python_round() -> None:
    # round(0.75 * n), halves to even: 0.75 -> 1, 1.5 -> 2, 2.25 -> 2, 3 -> 3, 3.75 -> 4, 4.5 -> 4,
    # 7.5 -> 8, 10.5 -> 10, 15.75 -> 16
    expected = {1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 4, 10: 8, 14: 10, 21: 16}
    rows = _rows({f"u{n}": n for n in expected})
    train, test = stratified_split(rows, ratio=0.75, seed=7)
    trained = Counter(r.user for r in train)
    tested = Counter(r.user for r in test)
    for n, in_train in expected.items():
        assert trained[f"u{n}"] == in_train
        assert tested[f"u{n}"] == n - in_train


def test_split_partitions_and_keeps_order() -> None:
    rows = _rows({f"u{n}": 3 + n % 17 for n in range(60)})
    train, test = stratified_split(rows, seed=3)
    assert not {r.key for r in train} & {r.key for r in test}
    assert sorted(r.key for r in train + test) == sorted(r.key for r in rows)
    position = {r.key: n for n, r in enumerate(rows)}
    assert [position[r.key] for r in train] == sorted(position[r.key] for r in train)
    assert [position[r.key] for r in test] == sorted(position[r.key] for r in test)


def test_split_is_deterministic_per_seed() -> None:
    rows = _rows({f"u{n}": 4 + n % 9 for n in range(40)})
    assert stratified_split(rows, seed=11) == stratified_split(rows, seed=11)
    assert stratified_split(rows, seed=11)[0] != stratified_split(rows, seed=12)[0]


def test_split_other_ratio_min_rating_and_rows() -> None:
    @dataclass(frozen=True)
    class Rating:
        user: int
        item: int

    rows = [Rating(u, i) for u in range(3) for i in range(u * 4 + 1)]  # users with 1, 5 and 9 rows
    train, test = stratified_split(rows, ratio=0.8, seed=1, min_rating=5)
    assert Counter(r.user for r in train) == {1: 4, 2: 7}  # round(4.0), round(7.2); user 0 dropped
    assert Counter(r.user for r in test) == {1: 1, 2: 2}
    for ratio in (0.0, 1.0):
        with pytest.raises(ValueError, match="ratio"):
            stratified_split(rows, ratio=ratio)
    with pytest.raises(ValueError, match="min_rating"):
        stratified_split(rows, min_rating=0)
    assert stratified_split([], seed=1) == ([], [])


@settings(max_examples=100, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from([f"u{n}" for n in range(12)]), st.integers(1, 40), min_size=1),
    ratio=st.sampled_from([0.5, 0.7, 0.75, 0.8, 0.9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_rule_holds_for_any_counts(counts: dict[str, int], ratio: float, seed: int) -> None:
    train, test = stratified_split(_rows(counts), ratio=ratio, seed=seed)
    trained = Counter(r.user for r in train)
    for user, n in counts.items():
        assert trained[user] == round(ratio * n)
    assert len(train) + len(test) == sum(counts.values())
