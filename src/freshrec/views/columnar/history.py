"""Per-user history in columns: ``user_history`` (last N events, purchases) and ``also_bought``.

``user_history`` keeps one array row per event, chained per user; a user's newest N by
``(timestamp, event_id)`` are what is read, and the rows beyond N are dropped once a user holds more than
N + :data:`SLACK` (so any arrival order keeps the same last N). Purchases are a ``(user, item)`` table that
``also_bought`` shares: a user's first purchase of an item pairs it with every item they bought before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numba
import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import EMPTY, KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import Batch, Bools, Vocabulary, marked

SLACK = 32


def _grow(array: Any, size: int, fill: Any = 0) -> Any:
    out = np.full(size, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


@numba.njit(cache=True)
def _append(user: Any, item: Any, kind: Any, ts: Any, head: Any, count: Any, line: Any, n: int) -> int:
    u_col, i_col, k_col, t_col, prev = line
    for j in range(len(user)):
        u = user[j]
        u_col[n], i_col[n], k_col[n], t_col[n] = u, item[j], kind[j], ts[j]
        prev[n] = head[u]
        head[u] = n
        count[u] += 1
        n += 1
    return n


class UserHistory:
    """``user_history``: each user's last N interactions and the set of items they purchased."""

    name = "user_history"
    keyed_by = "user_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary, purchases: KeyTable) -> None:
        self.vocabulary = vocabulary
        self.cap = settings.views.history_length
        self.purchase = vocabulary.types.get("purchase")
        self.purchases = purchases  # (user, item): written by AlsoBought, read here
        self._head = np.full(64, EMPTY, dtype=np.int32)
        self._count = np.zeros(64, dtype=np.int32)
        self._line = (
            np.zeros(1024, dtype=np.int32),  # user
            np.zeros(1024, dtype=np.int32),  # item
            np.zeros(1024, dtype=np.int8),  # type
            np.zeros(1024, dtype=np.float64),  # timestamp
            np.zeros(1024, dtype=np.int32),  # previous row of the same user
        )
        self._event_ids: list[str] = []
        self._alive = np.ones(1024, dtype=np.bool_)
        self._dead = 0

    def apply_batch(self, batch: Batch) -> None:
        users = len(self.vocabulary.users)
        if users > len(self._head):
            size = max(users, 2 * len(self._head))
            self._head = _grow(self._head, size, EMPTY)
            self._count = _grow(self._count, size)
        n = len(self._event_ids)
        if n + batch.n > len(self._line[0]):
            size = max(n + batch.n, 2 * len(self._line[0]))
            self._line = tuple(_grow(c, size) for c in self._line)
            self._alive = _grow(self._alive, size, True)
        _append(batch.user, batch.item, batch.kind, batch.ts, self._head, self._count, self._line, n)
        self._event_ids.extend(batch.event_ids)
        over = np.unique(batch.user[self._count[batch.user] > self.cap + SLACK])
        for user in over.tolist():
            rows = self._ordered(user)
            self._alive[rows[self.cap :]] = False
            self._count[user] = self.cap
            self._dead += len(rows) - self.cap
        if self._dead > max(len(self._event_ids) // 2, 4096):
            self._compact()

    def _chain(self, user: int) -> list[int]:
        prev, alive, out = self._line[4], self._alive, []
        r = int(self._head[user]) if user < len(self._head) else EMPTY
        while r != EMPTY:
            if alive[r]:
                out.append(r)
            r = int(prev[r])
        return out

    def _ordered(self, user: int) -> list[int]:
        """The user's live rows, largest ``(timestamp, event_id)`` first."""
        ts, ids = self._line[3], self._event_ids
        return sorted(self._chain(user), key=lambda r: (ts[r], ids[r]), reverse=True)

    def _compact(self) -> None:
        n = len(self._event_ids)
        keep = np.flatnonzero(self._alive[:n])
        users, items, kinds, ts, _ = (c[keep] for c in self._line)
        self._event_ids = [self._event_ids[r] for r in keep.tolist()]
        self._head[:] = EMPTY
        self._count[:] = 0
        self._alive[:] = True
        self._dead = 0
        _append(users, items, kinds, ts, self._head, self._count, self._line, 0)

    def expire(self, store: Any, now: float) -> None:
        """Bounded by length, not by time."""

    def _top(self, user_id: str) -> list[int]:
        user = self.vocabulary.users.get(user_id)
        return [] if user < 0 else self._ordered(user)[: self.cap]

    def purchased(self, store: Any, user_id: str) -> frozenset[str] | set[str]:
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return frozenset()
        name = self.vocabulary.items.name
        return {name(i) for i in self.purchases.kb[self.purchases.group(user)].tolist()}

    def recent_items(self, store: Any, user_id: str) -> list[tuple[str, str, float]]:
        _, items, kinds, ts, _ = self._line
        item, kind = self.vocabulary.items.name, self.vocabulary.types.name
        return [(item(int(items[r])), kind(int(kinds[r])), float(ts[r])) for r in self._top(user_id)]

    def has_history(self, store: Any, user_id: str) -> bool:
        user = self.vocabulary.users.get(user_id)
        return 0 <= user < len(self._count) and bool(self._count[user])

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        users = [key] if key is not None else [self.vocabulary.users.name(u) for u in self._users()]
        _, items, kinds, ts, _ = self._line
        item, kind = self.vocabulary.items.name, self.vocabulary.types.name
        return [
            {
                "user_id": user,
                "event_id": self._event_ids[r],
                "item_id": item(int(items[r])),
                "type": kind(int(kinds[r])),
                "timestamp": float(ts[r]),
            }
            for user in users
            for r in self._top(user)
        ]

    def user_count(self) -> int:
        """Users with at least one event."""
        return int(np.count_nonzero(self._count))

    def _users(self) -> list[int]:
        return np.flatnonzero(self._count).tolist()

    def arrays(self) -> dict[str, Any]:
        self._compact()
        n = len(self._event_ids)
        return {"line": [c[:n] for c in self._line], "event_ids": list(self._event_ids)}

    def load(self, arrays: dict[str, Any]) -> None:
        users, items, kinds, ts, _ = arrays["line"]
        n = len(users)
        size = max(1024, n)
        self._line = tuple(np.zeros(size, dtype=c.dtype) for c in arrays["line"])  # type: ignore[assignment]
        self._alive = np.ones(size, dtype=np.bool_)
        self._dead = 0
        self._event_ids = list(arrays["event_ids"])
        n_users = max(64, len(self.vocabulary.users))
        self._head = np.full(n_users, EMPTY, dtype=np.int32)
        self._count = np.zeros(n_users, dtype=np.int32)
        _append(users, items, kinds, ts, self._head, self._count, self._line, 0)

    def nbytes(self) -> int:
        line: int = sum(c.nbytes for c in self._line)
        return line + self._head.nbytes + self._count.nbytes + self._alive.nbytes + 8 * len(self._event_ids)

    def used_bytes(self) -> int:
        live = len(self._event_ids) - self._dead
        per_row = sum(c.itemsize for c in self._line) + 1 + 8  # + alive flag + the event id's reference
        per_user = self._head.itemsize + self._count.itemsize
        return live * per_row + len(self.vocabulary.users) * per_user

    def forget_users(self, dead: Bools) -> None:
        """The users' events go: marked dead (compacted later, like the rows beyond N), their chains cut,
        so a reused id starts empty."""
        n = len(self._event_ids)
        inside = np.flatnonzero(dead[: len(self._head)])
        if not len(inside) or not n:
            return
        gone = self._alive[:n] & marked(dead, self._line[0][:n])
        self._alive[:n] &= ~gone
        self._dead += int(np.count_nonzero(gone))
        self._head[inside] = EMPTY
        self._count[inside] = 0
        if self._dead > max(n // 2, 4096):
            self._compact()

    def forget_items(self, dead: Bools) -> None:
        """A user's events of a deleted item are the user's history and stay."""


@numba.njit(cache=True)
def _bought_with(
    rows: Any, new: Any, user: Any, item: Any, head: Any, nxt: Any, kb: Any, a: Any, b: Any
) -> int:
    """For each first purchase, the pairs (item, other) and (other, item) with every item the user bought
    before it (rows are numbered in purchase order)."""
    pairs = 0
    for i in range(len(rows)):
        if not new[i]:
            continue
        r = head[user[i]]
        while r != EMPTY:
            if r < rows[i]:
                a[pairs], b[pairs] = item[i], kb[r]
                a[pairs + 1], b[pairs + 1] = kb[r], item[i]
                pairs += 2
            r = nxt[r]
    return pairs


class AlsoBought:
    """``also_bought``: for two items, the number of distinct users who purchased both."""

    name = "also_bought"
    keyed_by = "item_id"

    def __init__(self, settings: Settings, vocabulary: Vocabulary, purchases: KeyTable) -> None:
        self.vocabulary = vocabulary
        self.purchase = vocabulary.types.get("purchase")
        self.purchases = purchases
        self.pairs = KeyTable({"users": np.int32})  # (item, other item)

    def apply_batch(self, batch: Batch) -> None:
        bought = batch.kind == self.purchase
        if not bought.any():
            return
        user, item = batch.user[bought], batch.item[bought]
        rows, new = self.purchases.upsert(user, item)
        if not new.any():
            return
        p = self.purchases
        held = np.bincount(p.ka[: p.n], minlength=int(user.max()) + 1)[user[new]]
        size = 2 * int(held.sum())
        a, b = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
        head, nxt = p.chains()
        pairs = _bought_with(rows, new, user, item, head, nxt, p.kb, a, b)
        if pairs:
            pair_rows, _ = self.pairs.upsert(a[:pairs], b[:pairs])
            np.add.at(self.pairs.column("users"), pair_rows, 1)

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    def ranked(self, store: Any, item_id: str) -> Iterator[tuple[str, float]]:
        """Items bought with ``item_id``: users desc, item_id asc."""
        item = self.vocabulary.items.get(item_id)
        if item < 0:
            return iter(())
        rows = self.pairs.group(item)
        name = self.vocabulary.items.name
        users = self.pairs.column("users")[rows].tolist()
        entries = [(name(o), float(n)) for o, n in zip(self.pairs.kb[rows].tolist(), users, strict=True)]
        entries.sort(key=lambda e: (-e[1], e[0]))
        return iter(entries)

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        name = self.vocabulary.items.name
        items = [key] if key is not None else sorted(name(i) for i in self.pairs.firsts().tolist())
        return [
            {"item_id": item, "other_item_id": other, "users": int(users)}
            for item in items
            for other, users in self.ranked(store, item)
        ]

    def arrays(self) -> dict[str, Any]:
        return {"pairs": self.pairs.arrays(), "purchases": self.purchases.arrays()}

    def load(self, arrays: dict[str, Any]) -> None:
        self.pairs.load(arrays["pairs"])
        self.purchases.load(arrays["purchases"])

    def nbytes(self) -> int:
        return self.pairs.nbytes() + self.purchases.nbytes()

    def used_bytes(self) -> int:
        return self.pairs.used_bytes() + self.purchases.used_bytes()

    def forget_users(self, dead: Bools) -> None:
        """The users' purchases go (``user_history`` reads them too); the pair counts they added stay (an
        anonymous aggregate): a user who comes back is a new distinct buyer."""
        self.purchases.drop(first=dead)

    def forget_items(self, dead: Bools) -> None:
        """A deleted item's pairs go, both ways; users' purchases of it stay (their history)."""
        self.pairs.drop(first=dead, second=dead)
