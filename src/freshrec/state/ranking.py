"""An in-memory ranking: scores by member, read in ``score desc, member asc`` order.

Writes are O(1) (a dict update and a dirty mark); the sorted order is brought up to date only when it is
read, re-placing just the members whose score changed since the last read. Hot items that receive many
events between two reads are re-placed once.

>>> r = Ranking()
>>> r.add("b", 2.0); r.add("a", 2.0); r.add("c", 5.0)
>>> list(r.iter_desc())
[('c', 5.0), ('a', 2.0), ('b', 2.0)]
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedList


class Ranking:
    __slots__ = ("_dirty", "_order", "_placed", "scores")

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self._order: SortedList[tuple[float, str]] | None = None
        self._placed: dict[str, tuple[float, str]] = {}
        self._dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self.scores)

    def __getstate__(self) -> dict[str, float]:
        return self.scores

    def __setstate__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self._order = None
        self._placed = {}
        self._dirty = set()

    def add(self, member: str, delta: float) -> None:
        self.scores[member] = self.scores.get(member, 0.0) + delta
        if self._order is not None:
            self._dirty.add(member)

    def set(self, member: str, score: float) -> None:
        self.scores[member] = score
        if self._order is not None:
            self._dirty.add(member)

    def remove(self, member: str) -> None:
        if self.scores.pop(member, None) is not None and self._order is not None:
            self._dirty.add(member)

    def score(self, member: str) -> float | None:
        return self.scores.get(member)

    def iter_desc(self) -> Iterator[tuple[str, float]]:
        """Members by score desc, then member asc. Do not write while iterating."""
        order = self._synced()
        for neg_score, member in order:
            yield member, -neg_score

    def _synced(self) -> SortedList[tuple[float, str]]:
        order = self._order
        if order is None or len(self._dirty) * 8 > len(self.scores) + 64:
            self._placed = {m: (-s, m) for m, s in self.scores.items()}
            order = self._order = SortedList(self._placed.values())
            self._dirty.clear()
            return order
        placed = self._placed
        for member in self._dirty:
            old = placed.pop(member, None)
            if old is not None:
                order.remove(old)
            score = self.scores.get(member)
            if score is not None:
                entry = (-score, member)
                order.add(entry)
                placed[member] = entry
        self._dirty.clear()
        return order
