"""``user_interest``: the centroid of the embeddings of the items a user interacted with.

Each interaction counts (the DataSQRL example's ``CENTER(embedding)`` over clicks). The view reads how
often the user interacted with each item from ``user_items``; the centroid is the count-weighted mean of
those items' current vectors, so an item whose embedding arrives after the events still counts, and a
changed item text moves every interested user at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from freshrec.embeddings import FloatMatrix
from freshrec.events import Event
from freshrec.state.base import StateStore
from freshrec.views.base import InteractionsReader, Resolved, Row


class UserInterest:
    name = "user_interest"
    keyed_by = "user_id"

    def __init__(
        self, vector_of: Callable[[str], FloatMatrix | None], user_items: InteractionsReader
    ) -> None:
        self.vector_of = vector_of
        self.user_items = user_items

    def apply(self, event: Event, attrs: Resolved, store: StateStore, now: float) -> None:
        """Derived from ``user_items`` at read time: nothing to store."""

    def expire(self, store: StateStore, now: float) -> None:
        """Lifetime view: nothing expires."""

    def centroid(self, store: StateStore, user_id: str) -> tuple[FloatMatrix | None, int]:
        """The user's interest vector (not normalised) and how many interactions it averages."""
        total: FloatMatrix | None = None
        count = 0
        for item_id, n in self.user_items.counts(store, user_id).items():
            vector = self.vector_of(item_id)
            if vector is None:
                continue
            total = vector * n if total is None else total + vector * n
            count += int(n)
        if total is None:
            return None, 0
        return (total / count).astype(np.float32), count

    def rows(self, store: StateStore, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else self.user_items.users(store)
        out: list[Row] = []
        for user in users:
            vector, count = self.centroid(store, user)
            out.append(
                {
                    "user_id": user,
                    "count": count,
                    "centroid": None if vector is None else [round(float(x), 6) for x in vector],
                }
            )
        return out
