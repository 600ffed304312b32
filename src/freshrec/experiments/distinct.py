"""Distinct users of one variant in bounded memory: exact up to :data:`EXACT_UP_TO`, then a HyperLogLog.

Below the bound the ids are kept and the count is exact. Past it they are folded into a HyperLogLog of
``2**14`` one-byte registers (16 KiB, whatever the number of users; Flajolet et al. 2007, with linear
counting for the small range): the count's relative standard error is ``1.04 / sqrt(2**14)``, about 0.8%.
Rates, lifts and p-values never use this count (they are per exposure), so they stay exact.

>>> users = UserCount()
>>> for n in range(3):
...     users.add(f"u{n}")
>>> users.add("u1")
>>> len(users)
3
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

#: users counted exactly (their ids held) before the count switches to the HyperLogLog
EXACT_UP_TO = 10_000
PRECISION = 14
REGISTERS = 1 << PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)
_MASK = (1 << 64) - 1


class UserCount:
    """``add`` a user id, ``len`` the number of distinct ids added (see the module docstring)."""

    __slots__ = ("exact", "registers")

    def __init__(self) -> None:
        self.exact: set[str] | None = set()
        self.registers: npt.NDArray[np.uint8] | None = None

    def add(self, user_id: str) -> None:
        exact = self.exact
        if exact is not None:
            exact.add(user_id)
            if len(exact) > EXACT_UP_TO:
                self.registers = np.zeros(REGISTERS, dtype=np.uint8)
                for known in exact:
                    self._register(known)
                self.exact = None
            return
        self._register(user_id)

    def _register(self, user_id: str) -> None:
        assert self.registers is not None
        h = int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")
        index = h >> (64 - PRECISION)
        rest = (h << PRECISION) & _MASK
        rank = min(64 - PRECISION, 64 - rest.bit_length()) + 1
        self.registers[index] = max(self.registers[index], rank)

    def __len__(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        assert self.registers is not None
        registers = self.registers
        raw = _ALPHA * REGISTERS * REGISTERS / float(np.sum(np.ldexp(1.0, -registers.astype(np.int32))))
        zeros = int(np.count_nonzero(registers == 0))
        if raw <= 2.5 * REGISTERS and zeros:
            return round(REGISTERS * math.log(REGISTERS / zeros))
        return round(raw)

    @property
    def approximate(self) -> bool:
        return self.exact is None

    def __getstate__(self) -> tuple[set[str] | None, npt.NDArray[np.uint8] | None]:
        return self.exact, self.registers

    def __setstate__(self, state: tuple[set[str] | None, npt.NDArray[np.uint8] | None]) -> None:
        self.exact, self.registers = state


class Counted:
    """A user count already known (read from a shared store): ``len`` is that number."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def add(self, user_id: str) -> None:
        raise TypeError("a stored user count is read-only")

    def __len__(self) -> int:
        return self.n
