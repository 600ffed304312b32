"""Bounded state for the columnar views: when each user was last active, and forgetting users in bulk.

Three limits (``retention.*`` settings, all off by default) pick users to forget, least recently active
first, where "active" is a user's newest event time:

* ``user_ttl_days`` — users whose newest event is older than ``now − ttl`` (looked for every
  ``sweep_every_seconds`` of the engine clock);
* ``max_users`` — above it, the least recently active users until 95% of it is held;
* ``memory_budget_mb`` — above it (the bytes of the entries held, :meth:`UserRetention.state_bytes`),
  the least recently active users until the state is under 95% of it.

Victims are picked in one ``numpy.argpartition`` over the users' last-active column, and forgotten
together: every columnar view drops their entries in one pass (:meth:`ColumnarView.forget_users`) and their
ids are given to the next new users, so memory stays at its peak under churn. Anonymous aggregates (item
popularity, trending counts, co-visit and also-bought pairs, cross-category counts) keep what a forgotten
user added; a user who comes back starts with no state and is a new distinct user to those aggregates.

>>> import numpy as np
>>> from freshrec.config import RetentionSettings
>>> from freshrec.views.columnar.batch import Vocabulary
>>> vocabulary = Vocabulary(["view"], [])
>>> ids = vocabulary.users.ids(["old", "new"])
>>> retention = UserRetention(RetentionSettings(max_users=1), vocabulary, [])
>>> retention.touch(ids, np.array([10.0, 20.0]))
>>> [(reason, users) for reason, users in retention.victims(now=20.0)]
[('max_users', ['old'])]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from freshrec.config import RetentionSettings
from freshrec.views.columnar.batch import Batch, ColumnarView, Vocabulary

DAY = 86_400.0
#: a limit that is hit forgets down to this share of it, so forgetting runs once per 5% of churn
LOW_WATER = 0.95
#: estimated bytes of one held user's name: the Python string and its interner dict entry
NAME_BYTES = 120
REASONS = ("ttl", "max_users", "memory", "request")
NEVER = -math.inf


class UserRetention:
    """The last-active column of every user id, the limits, and the forgetting of users and items."""

    def __init__(
        self, settings: RetentionSettings, vocabulary: Vocabulary, views: Sequence[ColumnarView]
    ) -> None:
        self.settings = settings
        self.vocabulary = vocabulary
        self.views = list(views)
        self.last = np.full(64, NEVER, dtype=np.float64)  # per user id: newest event time; NEVER = free
        self.evicted = dict.fromkeys(REASONS, 0)
        self.swept_at = NEVER  # engine clock of the last TTL sweep

    @property
    def enabled(self) -> bool:
        s = self.settings
        return s.user_ttl_days is not None or s.max_users is not None or s.memory_budget_mb is not None

    # -- activity -----------------------------------------------------------------------------------
    def apply_batch(self, batch: Batch) -> None:
        self.touch(batch.user, batch.ts)

    def touch(self, users: npt.NDArray[np.int64], ts: npt.NDArray[np.float64]) -> None:
        """Users ``users`` were active at ``ts``."""
        size = len(self.vocabulary.users)
        if size > len(self.last):
            grown = np.full(max(size, 2 * len(self.last)), NEVER, dtype=np.float64)
            grown[: len(self.last)] = self.last
            self.last = grown
        np.maximum.at(self.last, users, ts)

    def held(self) -> int:
        """Users with state."""
        return self.vocabulary.users.live()

    def state_bytes(self) -> int:
        """Bytes of the entries held by every columnar view, plus the users' names (estimated)."""
        return sum(v.used_bytes() for v in self.views) + self.held() * NAME_BYTES

    def _user_bytes(self) -> int:
        return sum(v.used_bytes() for v in self.views if v.keyed_by == "user_id") + self.held() * NAME_BYTES

    # -- choosing whom to forget ----------------------------------------------------------------------
    def victims(self, now: float) -> Iterator[tuple[str, list[str]]]:
        """``(reason, user ids)`` to forget now, one reason at a time; each is computed after the ones
        before it were forgotten (the caller forgets them, with :meth:`forget`, before asking on)."""
        s = self.settings
        if s.user_ttl_days is not None and now - self.swept_at >= s.sweep_every_seconds:
            self.swept_at = now
            n = len(self.vocabulary.users)
            ids = np.flatnonzero(self.last[:n] < now - s.user_ttl_days * DAY)
            ids = ids[self.last[ids] != NEVER]
            if len(ids):
                yield "ttl", self._names(ids)
        if s.max_users is not None and self.held() > s.max_users:
            target = max(1, int(s.max_users * LOW_WATER))
            yield "max_users", self._names(self._least_active(self.held() - target))
        if s.memory_budget_mb is not None:
            budget = s.memory_budget_mb * 1024 * 1024
            used = self.state_bytes()
            if used > budget and self.held():
                per_user = max(self._user_bytes() / self.held(), 1.0)
                count = min(self.held(), math.ceil((used - LOW_WATER * budget) / per_user))
                yield "memory", self._names(self._least_active(count))

    def _least_active(self, count: int) -> npt.NDArray[np.int64]:
        """Ids of the ``count`` held users with the oldest newest event (ties: any of them)."""
        n = len(self.vocabulary.users)
        held = np.flatnonzero(self.last[:n] != NEVER)
        if count >= len(held):
            return held
        if count <= 0:
            return held[:0]
        return held[np.argpartition(self.last[held], count - 1)[:count]]

    def _names(self, ids: npt.NDArray[np.int64]) -> list[str]:
        name = self.vocabulary.users.name
        return [name(i) for i in ids.tolist()]

    # -- forgetting -----------------------------------------------------------------------------------
    def forget(self, user_ids: Iterable[str], reason: str) -> int:
        """Forget every entry of ``user_ids`` in every view; returns how many users were held."""
        users = self.vocabulary.users
        ids = np.array([i for i in (users.get(u) for u in user_ids) if i >= 0], dtype=np.int64)
        if not len(ids):
            return 0
        dead = np.zeros(len(users), dtype=np.bool_)
        dead[ids] = True
        for view in self.views:
            view.forget_users(dead)
        self.last[ids] = NEVER
        users.forget(ids.tolist())
        self.evicted[reason] = self.evicted.get(reason, 0) + len(ids)
        return len(ids)

    def forget_items(self, item_ids: Iterable[str]) -> None:
        """Free the item-keyed entries of deleted items."""
        items = self.vocabulary.items
        ids = [i for i in (items.get(x) for x in item_ids) if i >= 0]
        if not ids:
            return
        dead = np.zeros(len(items), dtype=np.bool_)
        dead[ids] = True
        for view in self.views:
            view.forget_items(dead)

    # -- snapshots ------------------------------------------------------------------------------------
    def arrays(self) -> dict[str, Any]:
        return {
            "last": self.last[: len(self.vocabulary.users)],
            "evicted": dict(self.evicted),
            "swept_at": self.swept_at,
        }

    def load(self, arrays: dict[str, Any]) -> None:
        last = np.asarray(arrays["last"], dtype=np.float64)
        self.last = np.full(max(64, len(last)), NEVER, dtype=np.float64)
        self.last[: len(last)] = last
        self.evicted = {**dict.fromkeys(REASONS, 0), **arrays["evicted"]}
        self.swept_at = float(arrays["swept_at"])

    def stats(self) -> dict[str, Any]:
        return {"users": self.held(), "users_evicted": dict(self.evicted), "state_bytes": self.state_bytes()}
