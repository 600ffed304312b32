"""Training examples for the ranker from a time-ordered replay of the log (no leakage).

A shadow engine replays the events in timestamp order. At sampled *replay points* — an event whose item
is new to its user — the engine has applied exactly the events before that point, so the candidates and
their features are what a request at that moment would have seen; only then is the point's event applied.
The labels come from the future: 2 for the point's own item (the next item), 1 for the user's following
``next_items - 1`` new items, 0 for every other candidate. The CF model of the shadow engine is retrained
from what it has applied at a few checkpoints, so CF scores never know the future either.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from freshrec.config import Settings
from freshrec.events import Event
from freshrec.ranking.base import Request
from freshrec.ranking.candidates import gather
from freshrec.ranking.features import FEATURES, build

Progress = Callable[[int, int], None]
IntArray = npt.NDArray[np.int32]


@dataclass(slots=True)
class Examples:
    x: npt.NDArray[np.float32]
    y: IntArray
    groups: list[int]  # rows per replay point, in time order
    ranks: npt.NDArray[np.float32]  # (rows, sources): each source's rank of the row (for comparisons)
    events: int
    points: int = 0  # replay points asked (some have no positive among the candidates)
    times: list[float] = field(default_factory=list)  # of each group's replay point
    at: list[int] = field(default_factory=list)  # each group's replay point: its index in time order
    item_ids: list[str] = field(default_factory=list)  # the candidate of every row

    @property
    def queries(self) -> int:
        return len(self.groups)


def shadow_settings(settings: Settings, dim: int | None) -> Settings:
    """The settings of the training replay: event clock, no background training, vectors given."""
    embeddings = settings.embeddings.model_copy(
        update={"model": f"precomputed:{dim}" if dim is not None else "none"}
    )
    cf = settings.cf.model_copy(update={"retrain_every_seconds": 0.0})
    ranker = settings.ranker.model_copy(update={"enabled": False})
    return settings.model_copy(
        update={"clock": "event", "embeddings": embeddings, "cf": cf, "ranker": ranker}
    )


def replay_points(events: Sequence[Event], settings: Settings) -> tuple[list[int], dict[int, list[str]]]:
    """The sampled replay points (indices into ``events``) and each one's positives, in order."""
    s = settings.ranker
    touched: dict[str, set[str]] = defaultdict(set)
    new_of_user: dict[str, list[int]] = defaultdict(list)
    for n, e in enumerate(events):
        if e.item_id not in touched[e.user_id]:
            touched[e.user_id].add(e.item_id)
            new_of_user[e.user_id].append(n)
    start = int(len(events) * s.warmup)
    positives: dict[int, list[str]] = {}
    for indices in new_of_user.values():
        # a user's first event has no history to rank from
        for at in range(1, len(indices)):
            if indices[at] >= start:
                following = indices[at : at + s.next_items]
                positives[indices[at]] = [events[j].item_id for j in following]
    eligible = sorted(positives)
    if len(eligible) > s.max_queries:
        eligible = sorted(random.Random(s.seed).sample(eligible, s.max_queries))
    return eligible, {p: positives[p] for p in eligible}


def replay_examples(
    settings: Settings,
    items: Sequence[dict[str, Any]],
    events: Sequence[Event],
    dim: int | None = None,
    progress: Progress | None = None,
) -> Examples:
    """Examples from replaying ``events`` (any order; replayed by timestamp) over the catalog ``items``
    (with ``embedding`` when ``dim`` is given, and ``created_at`` when known)."""
    from freshrec.engine import Engine  # the engine holds a ranker service: imported late

    ordered = sorted(events, key=lambda e: e.ts)
    points, positives = replay_points(ordered, settings)
    shadow = Engine(shadow_settings(settings, dim))
    created = {i["item_id"]: i["created_at"] for i in items if "created_at" in i}
    records = [{k: v for k, v in i.items() if k != "created_at"} for i in items] if created else items
    for start in range(0, len(records), 1000):
        shadow.upsert_items(records[start : start + 1000])
    for item_id, at in created.items():  # the live catalog's creation times, so item ages are the same
        shadow.catalog.items[item_id].created_at = float(at)
    s = settings.ranker
    depth = s.candidates_per_source
    first = points[0] if points else len(ordered)
    checkpoints = [first + (len(ordered) - first) * j // s.cf_checkpoints for j in range(s.cf_checkpoints)]
    touched: dict[str, set[str]] = defaultdict(set)
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[IntArray] = []
    ranks: list[npt.NDArray[np.float32]] = []
    groups: list[int] = []
    times: list[float] = []
    at: list[int] = []
    item_ids: list[str] = []
    applied = 0
    batch = settings.events.max_batch
    hybrid = shadow.strategies
    for done, point in enumerate(points):
        while applied < point:
            upto = min(point, applied + batch)
            chunk = ordered[applied:upto]
            shadow.apply_events(shadow.new_events(chunk))
            for e in chunk:
                touched[e.user_id].add(e.item_id)
            applied = upto
        if checkpoints and point >= checkpoints[0]:
            while checkpoints and point >= checkpoints[0]:
                checkpoints.pop(0)
            if shadow.cf.settings.enabled:
                shadow.cf.fit(shadow.cf.collect(shadow.store, shadow.applied_events))
        event = ordered[point]
        user = event.user_id
        if not shadow.features.history.has_history(shadow.store, user):
            continue
        request = Request(
            user_id=user,
            k=depth,
            now=shadow.now(),
            purchased=shadow.purchased_items(user),
            exclude=frozenset(touched[user]),
        )
        candidates = gather(shadow.features, hybrid, shadow.item_strategies, request, depth)
        wanted = positives[point]
        label = dict.fromkeys(wanted[1:], 1)
        label[wanted[0]] = 2
        y = np.fromiter((label.get(i, 0) for i in candidates.item_ids), dtype=np.int32, count=len(candidates))
        if progress is not None:
            progress(done + 1, len(points))
        if not y.any():
            continue
        xs.append(build(shadow.feature_sources, user, request.now, candidates))
        ys.append(y)
        ranks.append(candidates.ranks.T.copy())
        groups.append(len(candidates))
        times.append(event.ts)
        at.append(point)
        item_ids.extend(candidates.item_ids)
    width = len(FEATURES)
    return Examples(
        x=np.concatenate(xs) if xs else np.zeros((0, width), dtype=np.float32),
        y=np.concatenate(ys) if ys else np.zeros(0, dtype=np.int32),
        groups=groups,
        ranks=np.concatenate(ranks) if ranks else np.zeros((0, 0), dtype=np.float32),
        events=len(ordered),
        points=len(points),
        times=times,
        at=at,
        item_ids=item_ids,
    )
