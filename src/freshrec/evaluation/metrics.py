"""Ranking metrics and the per-user stratified split (SPEC §8).

Replay metrics score predict-then-learn trials: a trial is the list recommended just before an event and
the one item of that event (the target).

The protocol metrics score one list per user against the user's relevant test items, with the definitions
of ``recommenders.evaluation.python_evaluation`` (Microsoft Recommenders; ``relevancy_method="top_k"``,
binary relevance) in the versions behind its published MovieLens-100k table (``reco_utils`` up to
``recommenders`` 1.1.x):

- users averaged over: those with at least one recommendation and at least one relevant item (the users
  common to both frames); such a user without a hit counts 0;
- precision@k: hits among the first k / k, also when fewer than k items were recommended;
- recall@k: hits among the first k / |relevant|;
- nDCG@k: sum over hits of 1/ln(1 + rank), over the ideal sum of 1/ln(1 + i) for i = 1..min(k, |relevant|);
  the base of the logarithm cancels;
- MAP (``map_at_k``): sum over hits of (hits so far / rank), divided by |relevant|.

``recommenders`` 1.2.0 renamed that MAP to ``map`` and gave its ``map_at_k`` the denominator
min(k, |relevant|) (``map_at_k_capped`` here); its nDCG there averages over every user with relevant items,
which is the same number whenever every such user has recommendations.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from itertools import accumulate
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

UserT = TypeVar("UserT", bound=Hashable)
ItemT = TypeVar("ItemT", bound=Hashable)
Trial = tuple[Sequence[str], str]


# --- replay: one target per trial ---------------------------------------------------------------------


class ReplayScores:
    """Running HR@K, NDCG@K, MRR and catalog coverage over replay trials, O(list length) per trial.

    With rank the 1-based position of the target's first occurrence in the recommended list:

    - HR@K: share of trials with rank <= K;
    - NDCG@K: mean of 1/log2(rank + 1) when rank <= K, else 0 (one relevant item: the ideal DCG is 1);
    - MRR: mean of 1/rank over the whole list given, not truncated at K; a target not in it counts 0;
    - coverage: distinct items among the first K of all trials / catalog size.

    The catalog size is given here or to ``result``; without it, the distinct items seen in the trials
    (recommended or target) stand for the catalog.

    >>> scores = ReplayScores(k=2, catalog_size=8)
    >>> scores.add(["a", "b"], "a")
    >>> scores.add(["c", "d", "e", "f"], "f")  # rank 4: beyond K, still counted by MRR
    >>> scores.result()
    {'hr@2': 0.5, 'ndcg@2': 0.5, 'mrr': 0.625, 'coverage': 0.5}
    """

    __slots__ = ("_hits", "_items", "_ndcg", "_rr", "_targets", "_trials", "catalog_size", "k")

    def __init__(self, k: int = 10, catalog_size: int | None = None) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.catalog_size = catalog_size
        self._trials = 0
        self._hits = 0
        self._ndcg = 0.0
        self._rr = 0.0
        self._items: set[str] = set()
        self._targets: set[str] = set()

    @property
    def trials(self) -> int:
        return self._trials

    def add(self, recommended: Sequence[str], target: str) -> None:
        """Score one trial."""
        self._trials += 1
        self._targets.add(target)
        self._items.update(recommended[: self.k])
        for rank, item in enumerate(recommended, 1):
            if item == target:
                self._rr += 1.0 / rank
                if rank <= self.k:
                    self._hits += 1
                    self._ndcg += 1.0 / math.log2(rank + 1)
                return

    def add_many(self, trials: Iterable[Trial]) -> None:
        for recommended, target in trials:
            self.add(recommended, target)

    def result(self, catalog_size: int | None = None) -> dict[str, float]:
        """``{"hr@K", "ndcg@K", "mrr", "coverage"}``; every value is 0.0 before the first trial."""
        size = catalog_size if catalog_size is not None else self.catalog_size
        if size is None:
            size = len(self._items | self._targets)
        n = self._trials
        return {
            f"hr@{self.k}": self._hits / n if n else 0.0,
            f"ndcg@{self.k}": self._ndcg / n if n else 0.0,
            "mrr": self._rr / n if n else 0.0,
            "coverage": len(self._items) / size if size else 0.0,
        }


def replay_scores(trials: Iterable[Trial], k: int = 10, catalog_size: int | None = None) -> dict[str, float]:
    """All replay metrics of ``trials`` (see ``ReplayScores``)."""
    scores = ReplayScores(k, catalog_size)
    scores.add_many(trials)
    return scores.result()


def hit_rate_at_k(trials: Iterable[Trial], k: int = 10) -> float:
    """Share of trials whose target is among the first k recommendations."""
    return replay_scores(trials, k)[f"hr@{k}"]


def target_ndcg_at_k(trials: Iterable[Trial], k: int = 10) -> float:
    """Mean over trials of 1/log2(rank + 1) if the target's rank <= k, else 0."""
    return replay_scores(trials, k)[f"ndcg@{k}"]


def mrr(trials: Iterable[Trial]) -> float:
    """Mean reciprocal rank of the target within the whole list given; absent from the list counts 0."""
    return replay_scores(trials)["mrr"]


def catalog_coverage(trials: Iterable[Trial], catalog_size: int, k: int = 10) -> float:
    """Distinct items among the first k recommendations of all trials / ``catalog_size``."""
    return replay_scores(trials, k, catalog_size)["coverage"]


# --- the Microsoft Recommenders protocol: a top-k list per user against a set of relevant items ---------


def _user_hits(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int
) -> list[tuple[list[int], int]]:
    """Per scored user: the 1-based ranks of the hits among the first k, and |relevant|."""
    if k < 1:
        raise ValueError("k must be at least 1")
    rows: list[tuple[list[int], int]] = []
    for user, items in recommended.items():
        wanted = set(relevant.get(user, ()))
        if not items or not wanted:
            continue
        top = items[:k]
        if len(set(top)) != len(top):
            raise ValueError(f"user {user!r}: an item is recommended twice")
        rows.append(([rank for rank, item in enumerate(top, 1) if item in wanted], len(wanted)))
    return rows


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return math.fsum(listed) / len(listed) if listed else 0.0


def _average_precision_sum(ranks: list[int]) -> float:
    return math.fsum(hit / rank for hit, rank in enumerate(ranks, 1))


def _scores(rows: list[tuple[list[int], int]], k: int) -> dict[str, float]:
    ideal = list(accumulate((1.0 / math.log(1 + i) for i in range(1, k + 1)), initial=0.0))
    return {
        "precision": _mean(len(ranks) / k for ranks, _ in rows),
        "recall": _mean(len(ranks) / n for ranks, n in rows),
        "ndcg": _mean(
            math.fsum(1.0 / math.log(1 + r) for r in ranks) / ideal[min(k, n)] for ranks, n in rows
        ),
        "map": _mean(_average_precision_sum(ranks) / n for ranks, n in rows),
        "map_capped": _mean(_average_precision_sum(ranks) / min(k, n) for ranks, n in rows),
    }


def precision_at_k(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int = 10
) -> float:
    """Mean over scored users of (hits among the first k) / k."""
    return _scores(_user_hits(recommended, relevant, k), k)["precision"]


def recall_at_k(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int = 10
) -> float:
    """Mean over scored users of (hits among the first k) / |relevant|."""
    return _scores(_user_hits(recommended, relevant, k), k)["recall"]


def ndcg_at_k(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int = 10
) -> float:
    """Mean over scored users of binary-relevance DCG@k / ideal DCG over min(k, |relevant|) items."""
    return _scores(_user_hits(recommended, relevant, k), k)["ndcg"]


def map_at_k(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int = 10
) -> float:
    """MAP of the published table: mean over scored users of sum(hits so far / rank) / |relevant|."""
    return _scores(_user_hits(recommended, relevant, k), k)["map"]


def map_at_k_capped(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int = 10
) -> float:
    """MAP@k of ``recommenders`` >= 1.2.0: as ``map_at_k`` but divided by min(k, |relevant|)."""
    return _scores(_user_hits(recommended, relevant, k), k)["map_capped"]


def ms_scores(
    recommended: Mapping[UserT, Sequence[ItemT]], relevant: Mapping[UserT, Collection[ItemT]], k: int = 10
) -> dict[str, float]:
    """``{"precision@K", "recall@K", "ndcg@K", "map"}`` as in the published table, in one pass."""
    scores = _scores(_user_hits(recommended, relevant, k), k)
    return {
        f"precision@{k}": scores["precision"],
        f"recall@{k}": scores["recall"],
        f"ndcg@{k}": scores["ndcg"],
        "map": scores["map"],
    }


# --- split ----------------------------------------------------------------------------------------------


class Interaction(NamedTuple):
    """One rating or event; ``key`` finds the original record."""

    user: str
    item: str
    rating: float = 1.0
    timestamp: float = 0.0
    key: str = ""


class _ByUser(Protocol):
    @property
    def user(self) -> Hashable: ...


RowT = TypeVar("RowT", bound=_ByUser)


def stratified_split(
    rows: Sequence[RowT], ratio: float = 0.75, seed: int = 42, min_rating: int = 1
) -> tuple[list[RowT], list[RowT]]:
    """Split per user: each user's rows are shuffled and the first round(ratio * n) go to train.

    The rule of ``python_stratified_split`` in the versions behind the published table: users with fewer
    than ``min_rating`` rows are dropped, and ``round`` is Python's (halves to even: 2 rows -> 2, 6 -> 4,
    10 -> 8). ``recommenders`` >= 1.2.0 keeps instead the rows with position / n <= ratio, i.e.
    floor(ratio * n) for ratio 0.75. The shuffle draws from one ``numpy.random.default_rng(seed)``, users
    taken in order of first appearance; train and test keep the input order.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError("ratio must be between 0 and 1")
    if min_rating < 1:
        raise ValueError("min_rating must be at least 1")
    by_user: dict[Hashable, list[int]] = {}
    for index, row in enumerate(rows):
        by_user.setdefault(row.user, []).append(index)
    rng = np.random.default_rng(seed)
    side = [0] * len(rows)  # 0 dropped, 1 train, 2 test
    for indices in by_user.values():
        n = len(indices)
        if n < min_rating:
            continue
        cut = round(ratio * n)
        for position, j in enumerate(rng.permutation(n).tolist()):
            side[indices[j]] = 1 if position < cut else 2
    train = [row for row, s in zip(rows, side, strict=True) if s == 1]
    test = [row for row, s in zip(rows, side, strict=True) if s == 2]
    return train, test
