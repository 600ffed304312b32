"""Price tiers (SPEC §3): ``budget < 25 <= mid-range < 100 <= premium < 500 <= luxury`` by default."""

from __future__ import annotations

import bisect

from freshrec.config import PriceTierSettings


class PriceTiers:
    """Maps a price to its tier name.

    >>> tiers = PriceTiers(PriceTierSettings())
    >>> [tiers.of(p) for p in (24.99, 25, 99.5, 100, 500, None)]
    ['budget', 'mid-range', 'mid-range', 'premium', 'luxury', None]
    """

    __slots__ = ("_bounds", "names")

    def __init__(self, settings: PriceTierSettings) -> None:
        self._bounds = list(settings.bounds)
        self.names = list(settings.names)

    def of(self, price: float | None) -> str | None:
        if price is None:
            return None
        return self.names[bisect.bisect_right(self._bounds, price)]
