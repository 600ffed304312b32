"""``category_cross_affinity``: among users who purchased in category A, the share who also purchased in B.

Lifetime, from purchases whose resolved category (the event's own, else the catalog's) is known. The state
is the set of ``(user, category)`` pairs with a purchase, the number of buyers of each category, the number
of users with any purchase, and per ordered pair ``(A, B)``, ``A != B``, how many users purchased in both.
A user's first purchase in a category adds one to every pair it forms with the user's earlier categories,
so each view row is a count kept exactly, whatever the arrival order. Read as SQL::

    WITH bought AS (SELECT DISTINCT user_id, category FROM resolved
                    WHERE type = 'purchase' AND category IS NOT NULL),
         buyers AS (SELECT category, count(*) AS users FROM bought GROUP BY 1)
    SELECT a.category AS category_a, b.category AS category_b,
           ba.users AS users_a, count(*) AS users_both, count(*) / ba.users AS share,
           bb.users AS users_b, bb.users / (SELECT count(DISTINCT user_id) FROM bought) AS base_rate_b,
           (count(*) / ba.users) / (bb.users / (SELECT count(DISTINCT user_id) FROM bought)) AS lift
    FROM bought a JOIN bought b ON a.user_id = b.user_id AND a.category <> b.category
    JOIN buyers ba ON ba.category = a.category JOIN buyers bb ON bb.category = b.category
    GROUP BY a.category, b.category, ba.users, bb.users
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from freshrec.config import Settings
from freshrec.state.keytable import KeyTable
from freshrec.views.base import Row
from freshrec.views.columnar.batch import NONE, Batch, Vocabulary, type_index


@dataclass(frozen=True, slots=True)
class CrossPair:
    """One ``(A, B)`` row: ``users_both`` of ``users_a`` buyers of A also bought in B."""

    category_a: str
    category_b: str
    users_a: int
    users_both: int
    users_b: int
    purchasers: int

    @property
    def share(self) -> float:
        return self.users_both / self.users_a

    @property
    def base_rate_b(self) -> float:
        return self.users_b / self.purchasers

    @property
    def lift(self) -> float:
        return self.share / self.base_rate_b


class CategoryCrossAffinity:
    name = "category_cross_affinity"
    keyed_by = "category"  # rows of one category A

    def __init__(self, settings: Settings, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.purchase = type_index(vocabulary.types, "purchase")
        self.bought = KeyTable({})  # (user, category); row order = order of first purchase
        self.pairs = KeyTable({"users": np.int64})  # (category A, category B)
        self.buyers = np.zeros(64, dtype=np.int64)  # per category
        self.purchasers = 0

    def apply_batch(self, batch: Batch) -> None:
        if self.purchase < 0:
            return
        keep = (batch.kind == self.purchase) & (batch.category != NONE)
        if not keep.any():
            return
        rows, new = self.bought.upsert(batch.user[keep], batch.category[keep])
        if not new.any():
            return
        n_categories = len(self.vocabulary.categories)
        if n_categories > len(self.buyers):
            grown = np.zeros(max(n_categories, 2 * len(self.buyers)), dtype=np.int64)
            grown[: len(self.buyers)] = self.buyers
            self.buyers = grown
        firsts, seconds = self.bought.ka, self.bought.kb
        for row in rows[new].tolist():
            user, category = int(firsts[row]), int(seconds[row])
            self.buyers[category] += 1
            group = self.bought.group(user)
            earlier = seconds[group[group < row]]
            if not len(earlier):
                self.purchasers += 1  # the user's first purchase with a category
                continue
            mine = np.full(len(earlier), category, dtype=np.int64)
            pair_rows, _ = self.pairs.upsert(np.concatenate([mine, earlier]), np.concatenate([earlier, mine]))
            self.pairs.column("users")[pair_rows] += 1  # the rows are distinct

    def expire(self, store: Any, now: float) -> None:
        """Lifetime view: nothing expires."""

    # -- reads --------------------------------------------------------------------------------------
    def _pair(self, row: int) -> CrossPair:
        names = self.vocabulary.categories.name
        a, b = int(self.pairs.ka[row]), int(self.pairs.kb[row])
        return CrossPair(
            category_a=names(a),
            category_b=names(b),
            users_a=int(self.buyers[a]),
            users_both=int(self.pairs.column("users")[row]),
            users_b=int(self.buyers[b]),
            purchasers=self.purchasers,
        )

    def pairs_from(self, category: str) -> list[CrossPair]:
        """The rows ``(category, B)`` for every B bought by a buyer of ``category``."""
        a = self.vocabulary.categories.get(category)
        if a < 0:
            return []
        return [self._pair(r) for r in self.pairs.group(a).tolist()]

    def purchased_categories(self, store: Any, user_id: str) -> list[str]:
        """The categories ``user_id`` purchased in, in the order of their first purchase."""
        user = self.vocabulary.users.get(user_id)
        if user < 0:
            return []
        names = self.vocabulary.categories.name
        return [names(int(c)) for c in self.bought.kb[self.bought.group(user)[::-1]].tolist()]

    def rows(self, store: Any, now: float, key: str | None) -> list[Row]:
        pairs = [self._pair(r) for r in range(self.pairs.n)] if key is None else self.pairs_from(key)
        return [
            {
                "category_a": p.category_a,
                "category_b": p.category_b,
                "users_a": p.users_a,
                "users_both": p.users_both,
                "share": p.share,
                "users_b": p.users_b,
                "base_rate_b": p.base_rate_b,
                "lift": p.lift,
            }
            for p in pairs
        ]

    # -- snapshots ----------------------------------------------------------------------------------
    def arrays(self) -> dict[str, Any]:
        return {
            "bought": self.bought.arrays(),
            "pairs": self.pairs.arrays(),
            "buyers": self.buyers.copy(),
            "purchasers": self.purchasers,
        }

    def load(self, arrays: dict[str, Any]) -> None:
        self.bought.load(arrays["bought"])
        self.pairs.load(arrays["pairs"])
        self.buyers = np.array(arrays["buyers"], dtype=np.int64)
        self.purchasers = int(arrays["purchasers"])

    def nbytes(self) -> int:
        return self.bought.nbytes() + self.pairs.nbytes() + self.buyers.nbytes

    def used_bytes(self) -> int:
        return self.bought.used_bytes() + self.pairs.used_bytes() + self.buyers.nbytes

    def forget_users(self, dead: Any) -> None:
        """The users' purchased categories go; the counts they added stay (anonymous aggregates): a user
        who comes back is a new buyer."""
        self.bought.drop(first=dead)

    def forget_items(self, dead: Any) -> None:
        """Keyed by category: nothing of an item."""
