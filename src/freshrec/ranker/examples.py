"""Training examples for the ranker from a time-ordered replay of the log (no leakage).

A shadow engine replays the events in timestamp order. At sampled *replay points* (:func:`replay_points`)
the engine has applied exactly the events before that point, so the candidates and their features are what
a request at that moment would have seen; only then is the point's event applied. The labels come from the
future: 2 for the user's next new item, 1 for their following ``next_items - 1`` new items, 0 for every
other candidate. The CF model of the shadow engine is retrained
from what it has applied at a few checkpoints, so CF scores never know the future either.
"""

from __future__ import annotations

import bisect
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
    #: each group's replay point: (index of the event it comes before, in time order; user)
    at: list[tuple[int, str]] = field(default_factory=list)
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


@dataclass(slots=True, frozen=True)
class Point:
    """A moment of the replay to rank for: the state before ``events[at]``, one user, their next items."""

    at: int
    user: str
    positives: tuple[str, ...]  # the user's next new items from ``at`` on, the nearest first


def replay_points(events: Sequence[Event], settings: Settings) -> list[Point]:
    """The sampled replay points, in time order.

    Two kinds, ``returning_share`` of the second: *in-session* points (an event whose item is new to its
    user: rank before it happens) and *returning* points (a moment of the log and a user with history
    before it and new items after it, who is not necessarily active then: a request of a user coming
    back later).
    """
    s = settings.ranker
    touched: dict[str, set[str]] = defaultdict(set)
    new_of_user: dict[str, list[int]] = defaultdict(list)
    first_of_user: dict[str, int] = {}
    for n, e in enumerate(events):
        first_of_user.setdefault(e.user_id, n)
        if e.item_id not in touched[e.user_id]:
            touched[e.user_id].add(e.item_id)
            new_of_user[e.user_id].append(n)
    start = int(len(events) * s.warmup)

    def point(at: int, user: str, offset: int) -> Point:
        following = new_of_user[user][offset : offset + s.next_items]
        return Point(at, user, tuple(events[j].item_id for j in following))

    in_session: list[Point] = []
    for user, indices in new_of_user.items():
        # a user's first event has no history to rank from
        in_session.extend(point(indices[o], user, o) for o in range(1, len(indices)) if indices[o] >= start)
    rng = random.Random(s.seed)
    returning_wanted = round(s.max_queries * s.returning_share)
    session_wanted = s.max_queries - returning_wanted
    if len(in_session) > session_wanted:
        in_session = rng.sample(in_session, session_wanted)
    returning: list[Point] = []
    users = sorted(new_of_user)
    tries = 0
    while len(returning) < returning_wanted and tries < 20 * returning_wanted and start < len(events):
        tries += 1
        at = rng.randrange(start, len(events))
        user = users[rng.randrange(len(users))]
        later = bisect.bisect_left(new_of_user[user], at)
        if first_of_user[user] < at and later < len(new_of_user[user]):
            returning.append(point(at, user, later))
    return sorted(in_session + returning, key=lambda p: (p.at, p.user))


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
    points = replay_points(ordered, settings)
    shadow = Engine(shadow_settings(settings, dim))
    created = {i["item_id"]: i["created_at"] for i in items if "created_at" in i}
    records = [{k: v for k, v in i.items() if k != "created_at"} for i in items] if created else items
    for start in range(0, len(records), 1000):
        shadow.upsert_items(records[start : start + 1000])
    for item_id, stamp in created.items():  # the live catalog's creation times: the same item ages
        shadow.catalog.items[item_id].created_at = float(stamp)
    s = settings.ranker
    depth = s.candidates_per_source
    first = int(len(ordered) * s.warmup)
    checkpoints = [first + (len(ordered) - first) * j // s.cf_checkpoints for j in range(s.cf_checkpoints)]
    touched: dict[str, set[str]] = defaultdict(set)
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[IntArray] = []
    ranks: list[npt.NDArray[np.float32]] = []
    groups: list[int] = []
    times: list[float] = []
    at: list[tuple[int, str]] = []
    item_ids: list[str] = []
    applied = 0
    batch = settings.events.max_batch
    hybrid = shadow.strategies
    for done, p in enumerate(points):
        point = p.at
        while applied < point or (checkpoints and checkpoints[0] <= point):
            if checkpoints and checkpoints[0] <= applied:
                # CF retrained on exactly the events before the checkpoint, whatever the points are
                checkpoints.pop(0)
                if shadow.cf.settings.enabled:
                    shadow.cf.fit(shadow.cf.collect(shadow.store, shadow.applied_events))
                continue
            upto = min(point, applied + batch, checkpoints[0] if checkpoints else point)
            chunk = ordered[applied:upto]
            shadow.apply_events(shadow.new_events(chunk))
            for e in chunk:
                touched[e.user_id].add(e.item_id)
            applied = upto
        user = p.user
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
        label = dict.fromkeys(p.positives[1:], 1)
        label[p.positives[0]] = 2
        y = np.fromiter((label.get(i, 0) for i in candidates.item_ids), dtype=np.int32, count=len(candidates))
        if progress is not None:
            progress(done + 1, len(points))
        if not y.any():
            continue
        xs.append(build(shadow.feature_sources, user, request.now, candidates))
        ys.append(y)
        ranks.append(candidates.ranks.T.copy())
        groups.append(len(candidates))
        times.append(ordered[point].ts)
        at.append((point, user))
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
