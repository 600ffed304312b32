"""Dense integer ids for the strings of a kind (users, items, categories, brands): interned once.

>>> users = Interner()
>>> users.ids(["u1", "u2", "u1"]).tolist(), users.name(1), users.get("u3")
([0, 1, 0], 'u2', -1)

A forgotten name's id is free for the next new name (users are forgotten by retention), so the ids, and
every array indexed by them, stay as dense as the names held:

>>> users.forget([0]); users.get("u1"), users.id("u9"), len(users), users.live()
(-1, 0, 2, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

#: the name a free id holds (no user id is empty: SPEC §1)
FREE = ""


class Interner:
    """``str <-> int``: ids are given in order of first sight; a forgotten name's id is reused."""

    __slots__ = ("_free", "_ids", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self._free: list[int] = []
        for name in names:
            self.id(name)

    def __len__(self) -> int:
        """One more than the largest id ever given (the length arrays indexed by id need)."""
        return len(self._names)

    def live(self) -> int:
        """Names held (ids not free)."""
        return len(self._names) - len(self._free)

    def id(self, name: str) -> int:
        """The id of ``name``, given a new one (a free one first) when it has none."""
        found = self._ids.get(name)
        if found is None:
            if self._free:
                found = self._free.pop()
                self._names[found] = name
            else:
                found = len(self._names)
                self._names.append(name)
            self._ids[name] = found
        return found

    def forget(self, ids: Iterable[int]) -> None:
        """Forget the names of ``ids``: their ids are given to the next new names."""
        names, known = self._names, self._ids
        for ident in ids:
            name = names[ident]
            if known.pop(name, None) is not None:
                names[ident] = FREE
                self._free.append(ident)

    def ids(self, names: Sequence[str]) -> npt.NDArray[np.int64]:
        get, new = self._ids.get, self.id
        out = [get(n) for n in names]
        if None in out:
            out = [new(n) for n in names]
        return np.asarray(out, dtype=np.int64)

    def get(self, name: str) -> int:
        """The id of ``name``, or -1 when it has none."""
        return self._ids.get(name, -1)

    def name(self, ident: int) -> str:
        return self._names[ident]

    def names(self) -> list[str]:
        return self._names

    def load(self, names: Sequence[str], free: Iterable[int] = ()) -> None:
        """Replace the names by ``names`` (as :meth:`names` gave them) with the free ids ``free``."""
        self._names = list(names)
        self._free = list(free)  # in the order :meth:`free_ids` gave: the same ids are given next
        holes = set(self._free)
        self._ids = {n: i for i, n in enumerate(self._names) if i not in holes}

    def free_ids(self) -> list[int]:
        return list(self._free)
