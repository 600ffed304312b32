"""Batch reads of many items at once, for the ranker's feature matrix.

On the columnar views they are array operations over the key tables (one index probe for every
``(before, after)`` pair, one fancy index for popularity); any other layout is read through the view's
reader protocol one item at a time, with the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from freshrec.views.base import CoVisitReader, PopularityReader
from freshrec.views.columnar.covisit import CoVisits
from freshrec.views.columnar.popularity import ItemPopularity

FloatArray = npt.NDArray[np.float32]


def _codes(vocabulary: Any, ids: Sequence[str]) -> npt.NDArray[np.int64]:
    get = vocabulary.items.get
    return np.fromiter((get(i) for i in ids), dtype=np.int64, count=len(ids))


def co_visit_matrix(
    view: CoVisitReader, store: Any, befores: Sequence[str], afters: Sequence[str]
) -> FloatArray:
    """``(afters, befores)``: the co-visit frequency of each pair, 0 when never seen."""
    out = np.zeros((len(afters), len(befores)), dtype=np.float32)
    if not len(afters) or not len(befores):
        return out
    if isinstance(view, CoVisits):
        a = _codes(view.vocabulary, befores)
        b = _codes(view.vocabulary, afters)
        pa = np.tile(a, len(b))
        pb = np.repeat(b, len(a))
        valid = (pa >= 0) & (pb >= 0)
        rows = np.full(len(pa), -1, dtype=np.int64)
        if valid.any():
            rows[valid] = view.pairs.find(pa[valid], pb[valid])
        found = rows >= 0
        flat = out.reshape(-1)
        flat[found] = view.pairs.column("frequency")[rows[found]]
        return out
    for n, after in enumerate(afters):
        out[n] = [v or 0.0 for v in view.frequencies(store, befores, after)]
    return out


def popularities(view: PopularityReader, store: Any, ids: Sequence[str]) -> FloatArray:
    """The lifetime weighted total of every item (0 when it has no events)."""
    if isinstance(view, ItemPopularity):
        codes = _codes(view.vocabulary, ids)
        total = view.total
        known = (codes >= 0) & (codes < len(total))
        out = np.zeros(len(ids), dtype=np.float32)
        out[known] = total[codes[known]]
        return out
    return np.asarray(view.popularities(store, ids), dtype=np.float32)
