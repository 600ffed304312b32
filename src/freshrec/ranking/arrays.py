"""Array fast paths of the strategies on the columnar views: scores summed in NumPy, top-k picked exactly.

A strategy whose candidates and scores live in arrays (co-visit partners of the user's last items, items
bought with an item) scores every candidate at once and orders them by ``score desc, popularity desc`` with
one ``lexsort``; only then are candidates turned into ids and passed through the request's filters, one by one
in that order until ``k`` are accepted, and a run of equal ``(score, popularity)`` is put in ``item_id``
order (SPEC §4) before it is taken. The answer is the one the generic path (sorted Python iterators over
the reader protocols) gives, at the cost of the candidates' arrays rather than of Python objects.

Each function returns None when a view is not columnar (a networked store): the caller keeps its generic path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from freshrec.ranking.base import SCORE_DECIMALS
from freshrec.views.columnar.covisit import CoVisits
from freshrec.views.columnar.history import AlsoBought
from freshrec.views.columnar.popularity import ItemPopularity

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]


def pair_sums(view: Any, sources: Sequence[str]) -> tuple[Ids, Scores, Ids] | None:
    """``(partners, summed value, source ids)`` over the pairs ``(source, partner)`` of a pair view.

    ``co_visits`` sums frequencies, ``also_bought`` user counts; None for a view that is not columnar.
    """
    if isinstance(view, CoVisits):
        column = "frequency"
    elif isinstance(view, AlsoBought):
        column = "users"
    else:
        return None
    ids = view.vocabulary.items
    known = np.asarray([i for i in (ids.get(s) for s in sources) if i >= 0], dtype=np.int64)
    pairs = view.pairs
    head, nxt = pairs.chains()
    room = max(1, len(ids))
    sums = np.zeros(room, dtype=np.float64)
    touched = np.empty(room, dtype=np.int64)
    count = _sum_chains(head, nxt, pairs.kb, pairs.column(column), known, sums, touched)
    partners = touched[:count]
    return partners, sums[partners], known


@numba.njit(cache=True)
def _sum_chains(
    head: Any, nxt: Any, kb: Any, values: Any, sources: Any, sums: Any, touched: Any
) -> int:  # pragma: no cover - compiled
    """Add ``values`` of every pair of each source's chain into ``sums[partner]``; the partners seen, once."""
    count = 0
    for a in sources:
        r = head[a] if a < len(head) else -1
        while r >= 0:
            b = kb[r]
            if sums[b] == 0.0:
                touched[count] = b
                count += 1
            sums[b] += values[r]
            r = nxt[r]
    return count


def top_accepted(
    popularity: Any,
    candidates: Ids,
    scores: Scores,
    accept: Callable[[str], bool],
    k: int,
) -> list[tuple[str, float]] | None:
    """The first ``k`` accepted ``(item_id, score)`` of ``candidates`` in result order (None: not columnar).

    Scores are rounded as every strategy rounds them (:data:`~freshrec.ranking.base.SCORE_DECIMALS`);
    candidates with a score of 0 or less are left out.
    """
    if not isinstance(popularity, ItemPopularity):
        return None
    keep = scores > 0.0
    candidates, scores = candidates[keep], np.round(scores[keep], SCORE_DECIMALS)
    room = 4 * k + 64
    if len(scores) > room:
        # the best ``room`` scores and every tie of the lowest of them first: most answers end there
        threshold = -np.partition(-scores, room)[room]
        best = scores >= threshold
        first = _ordered(popularity, candidates[best], scores[best], accept, k)
        if len(first) >= k:
            return first
        return first + _ordered(popularity, candidates[~best], scores[~best], accept, k - len(first))
    return _ordered(popularity, candidates, scores, accept, k)


def _ordered(
    popularity: ItemPopularity, candidates: Ids, scores: Scores, accept: Callable[[str], bool], k: int
) -> list[tuple[str, float]]:
    if not len(candidates):
        return []
    total = popularity.total
    pops = np.zeros(len(candidates), dtype=np.float64)
    inside = candidates < len(total)
    pops[inside] = total[candidates[inside]]
    order = np.lexsort((-pops, -scores))
    ordered_scores, ordered_pops = scores[order], pops[order]
    # runs of equal (score, popularity): item_id order decides inside each
    changes = (np.diff(ordered_scores) != 0.0) | (np.diff(ordered_pops) != 0.0)
    bounds = np.concatenate(([0], np.flatnonzero(changes) + 1, [len(order)])).tolist()
    name = popularity.vocabulary.items.name
    out: list[tuple[str, float]] = []
    for start, end in itertools.pairwise(bounds):
        score = float(ordered_scores[start])
        for item_id in sorted(name(c) for c in candidates[order[start:end]].tolist()):
            if accept(item_id):
                out.append((item_id, score))
                if len(out) >= k:
                    return out
    return out
