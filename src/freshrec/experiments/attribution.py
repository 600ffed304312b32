"""Exposures and the events that credit them, tallied per variant as they happen.

An **exposure** is one answer of an experiment: its request id, variant, user, items and time. An event of
a counted type (click, add_to_cart, purchase) credits at most one exposure per experiment:

* with a ``request_id``: that exposure, if it is the same user's, shows the item, and the event's time is
  within ``[exposure time, exposure time + metric_window_seconds]``;
* without one: the user's **latest** exposure of the experiment (latest time, then latest logged) that
  shows the item and whose window holds the event's time.

Only exposures logged before the event count (the log's order), and each (exposure, item, type) counts
once: a second click on the same item of the same answer changes nothing. A purchase adds the item's price
(the event's ``price``, else the catalog's) to the exposure's revenue once.

Exposures are kept while events can still credit them: until two windows after they were shown (an event
may arrive up to one window late). Tallies are kept for good; the distinct users of a variant are counted in
bounded memory (:mod:`freshrec.experiments.distinct`).

The same rules run in distributed mode (:mod:`freshrec.experiments.shared`) on an :class:`Attribution` holding
only the exposures of the users of one batch, loaded from the shared store and written back after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from freshrec.events import Event
from freshrec.experiments.distinct import Counted, UserCount

COUNTED = ("click", "add_to_cart", "purchase")


@dataclass(slots=True, eq=False)
class Exposure:
    request_id: str
    experiment_id: str
    variant: str
    user_id: str
    items: frozenset[str]
    at: float
    seq: int
    window: float
    credited: dict[str, set[str]] = field(default_factory=dict)
    revenue: float = 0.0


@dataclass(slots=True)
class Tally:
    """One variant's counters; ``clicked`` etc. count exposures, ``clicks`` etc. (exposure, item) pairs."""

    users: UserCount | Counted | set[str] = field(default_factory=UserCount)  # a set: older snapshots
    exposures: int = 0
    clicked: int = 0
    carted: int = 0
    converted: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0  # sum over exposures of (that exposure's revenue)^2


class Attribution:
    """The live exposures and the tallies of every experiment."""

    def __init__(self) -> None:
        self.tallies: dict[str, dict[str, Tally]] = {}
        self.live: dict[str, Exposure] = {}
        self.by_user: dict[str, dict[str, list[Exposure]]] = {}
        self.order: deque[Exposure] = deque()
        self.seq = 0

    def tally(self, experiment_id: str, variant: str) -> Tally:
        return self.tallies.setdefault(experiment_id, {}).setdefault(variant, Tally())

    def expose(self, exposure: Exposure) -> None:
        """Log ``exposure`` (its ``seq`` is the next of this log's order unless it already has one)."""
        if not exposure.seq:
            self.seq += 1
            exposure.seq = self.seq
        tally = self.tally(exposure.experiment_id, exposure.variant)
        tally.exposures += 1
        tally.users.add(exposure.user_id)
        self.live[exposure.request_id] = exposure
        self.by_user.setdefault(exposure.user_id, {}).setdefault(exposure.experiment_id, []).append(exposure)
        self.order.append(exposure)
        self.forget_before(exposure.at)

    def forget_before(self, now: float) -> None:
        """Drop exposures no event can credit any more (shown over two windows before ``now``)."""
        order = self.order
        while order and order[0].at + 2 * order[0].window < now:
            old = order.popleft()
            self.live.pop(old.request_id, None)
            per_user = self.by_user.get(old.user_id)
            if per_user is None:
                continue
            shown = per_user.get(old.experiment_id)
            if shown:
                at = next((i for i, e in enumerate(shown) if e is old), None)
                if at is not None:
                    del shown[at]
                if not shown:
                    del per_user[old.experiment_id]
            if not per_user:
                del self.by_user[old.user_id]

    def credit_events(self, events: Iterable[Event], price_of: Callable[[Event], float]) -> int:
        """Credit the exposures ``events`` respond to; returns how many credits were new."""
        credits = 0
        for event in events:
            if event.type not in COUNTED:
                continue
            for exposure in self._credited_by(event):
                credits += self._credit(exposure, event, price_of)
        return credits

    def _credited_by(self, event: Event) -> list[Exposure]:
        if event.request_id is not None:
            exposure = self.live.get(event.request_id)
            if exposure is None or exposure.user_id != event.user_id or not _holds(exposure, event):
                return []
            return [exposure]
        per_user = self.by_user.get(event.user_id)
        if per_user is None:
            return []
        out = []
        for shown in per_user.values():
            latest: Exposure | None = None
            for exposure in shown:
                if _holds(exposure, event) and (
                    latest is None or (exposure.at, exposure.seq) > (latest.at, latest.seq)
                ):
                    latest = exposure
            if latest is not None:
                out.append(latest)
        return out

    def _credit(self, exposure: Exposure, event: Event, price_of: Callable[[Event], float]) -> int:
        kinds = exposure.credited.setdefault(event.item_id, set())
        if event.type in kinds:
            return 0
        first = not any(event.type in k for k in exposure.credited.values())
        kinds.add(event.type)
        tally = self.tally(exposure.experiment_id, exposure.variant)
        if event.type == "click":
            tally.clicks += 1
            tally.clicked += first
        elif event.type == "add_to_cart":
            tally.add_to_carts += 1
            tally.carted += first
        else:
            tally.purchases += 1
            tally.converted += first
            price = price_of(event)
            before = exposure.revenue
            exposure.revenue += price
            tally.revenue += price
            tally.revenue_sq += exposure.revenue**2 - before**2
        return 1


def _holds(exposure: Exposure, event: Event) -> bool:
    """Whether ``event`` can credit ``exposure``: the item was shown and the time is inside the window."""
    return event.item_id in exposure.items and exposure.at <= event.ts <= exposure.at + exposure.window
