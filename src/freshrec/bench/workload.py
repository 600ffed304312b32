"""Workloads of the benchmark: the demo's catalog and a clickstream that scales to millions of users.

The demo scenario (``freshrec.demo.scenario``) plants rich behaviour, but at ~340 events per user and day it
cannot make a million users on one machine. :class:`Clickstream` draws events with numpy instead, with the
same catalog and the same shape: every user has favourite categories (70% of their events), items are
Zipf-popular inside a category, event types follow a shop's funnel, views carry a dwell time, and sessions
are 30-minute buckets. It is deterministic for a seed and built chunk by chunk, so a million users' events
never sit in memory as dicts at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from freshrec.demo.catalog_gen import CATEGORY_NAMES, generate_catalog

TYPES = ("view", "click", "add_to_cart", "wishlist", "save", "share", "purchase")
TYPE_SHARES = (0.62, 0.2, 0.06, 0.03, 0.03, 0.02, 0.04)
FAVOURITE_SHARE = 0.7
SESSION_SECONDS = 1800
CHUNK = 10_000
PER_ACTIVE = 8


def catalog(n_items: int, seed: int = 1) -> list[dict[str, Any]]:
    """The demo shop's ``n_items`` products (categories, brands, prices across every tier, stock)."""
    return generate_catalog(n_items, seed).items


@dataclass
class Clickstream:
    """Events of ``n_users`` users on ``items``; ``warm`` gives every user events, ``stream`` a Zipf mix."""

    items: list[dict[str, Any]]
    n_users: int
    seed: int = 1
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    _by_category: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = field(init=False)
    _favourites: np.ndarray[Any, Any] = field(init=False)
    _item_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        categories = [c for c in CATEGORY_NAMES if any(it["category"] == c for it in self.items)]
        index = {c: n for n, c in enumerate(categories)}
        members: list[list[int]] = [[] for _ in categories]
        for n, item in enumerate(self.items):
            members[index[item["category"]]].append(n)
        self._by_category = []
        for idxs in members:
            weights = 1.0 / (np.arange(len(idxs)) + 1.0) ** 1.1
            self._by_category.append((np.asarray(idxs), np.cumsum(weights) / weights.sum()))
        self._favourites = rng.integers(0, len(categories), size=(self.n_users, 2))
        self._item_ids = [str(it["item_id"]) for it in self.items]
        self._ncat = len(categories)

    def warm(self, per_user: int, span: float) -> Iterator[list[dict[str, Any]]]:
        """``per_user`` events for every user, spread over ``span`` seconds from :attr:`start`, in chunks."""
        rng = np.random.default_rng([self.seed, 1])
        total = self.n_users * per_user
        times = np.sort(rng.uniform(0, span, size=total)) + self.start
        users = rng.permutation(np.repeat(np.arange(self.n_users), per_user))
        yield from self._chunks(rng, users, times, "w")

    def stream(
        self, n_events: int, after: float, span: float, label: str = "s"
    ) -> Iterator[list[dict[str, Any]]]:
        """``n_events`` events from ``after`` over ``span`` s, from a random set of active users.

        About ``PER_ACTIVE`` events per active user (a browsing session), so no user is a bot whose
        thousands of events in ten minutes would make every co-visit window quadratic.
        """
        rng = np.random.default_rng([self.seed, 2, int(after)])
        active = rng.permutation(self.n_users)[: max(1, min(self.n_users, n_events // PER_ACTIVE))]
        users = active[rng.integers(0, len(active), size=n_events)]
        times = np.sort(rng.uniform(0, span, size=n_events)) + after
        yield from self._chunks(rng, users, times, label)

    def _chunks(
        self, rng: np.random.Generator, users: np.ndarray[Any, Any], times: np.ndarray[Any, Any], label: str
    ) -> Iterator[list[dict[str, Any]]]:
        n = len(users)
        favourite = rng.random(n) < FAVOURITE_SHARE
        which = rng.integers(0, 2, size=n)
        cats = np.where(favourite, self._favourites[users, which], rng.integers(0, self._ncat, size=n))
        picks = rng.random(n)
        types = rng.choice(len(TYPES), size=n, p=TYPE_SHARES)
        dwell = np.round(rng.exponential(40.0, size=n), 1)
        item_of = np.empty(n, dtype=np.int64)
        for c, (idxs, cum) in enumerate(self._by_category):
            mask = cats == c
            item_of[mask] = idxs[np.minimum(np.searchsorted(cum, picks[mask]), len(idxs) - 1)]
        for lo in range(0, n, CHUNK):
            chunk = []
            for j in range(lo, min(n, lo + CHUNK)):
                u = int(users[j])
                ts = round(float(times[j]), 3)
                event: dict[str, Any] = {
                    "event_id": f"{label}-{j}",
                    "user_id": f"u{u}",
                    "item_id": self._item_ids[item_of[j]],
                    "type": TYPES[types[j]],
                    "timestamp": ts,
                    "session_id": f"u{u}-{int(ts // SESSION_SECONDS)}",
                }
                if types[j] == 0:
                    event["dwell_seconds"] = float(dwell[j])
                chunk.append(event)
            yield chunk
