"""Dense integer ids for the strings of a kind (users, items, categories, brands): interned once.

>>> users = Interner()
>>> users.ids(["u1", "u2", "u1"]).tolist(), users.name(1), users.get("u3")
([0, 1, 0], 'u2', -1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt


class Interner:
    """``str <-> int``: ids are given in order of first sight and never reused."""

    __slots__ = ("_ids", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        for name in names:
            self.id(name)

    def __len__(self) -> int:
        return len(self._names)

    def id(self, name: str) -> int:
        """The id of ``name``, given a new one when it has none."""
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self._names)
            self._names.append(name)
        return found

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

    def load(self, names: Sequence[str]) -> None:
        self._names = list(names)
        self._ids = {n: i for i, n in enumerate(self._names)}
