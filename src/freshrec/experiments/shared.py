"""Experiments in distributed mode: declarations, exposures and tallies in the shared state store.

* **Declarations** are documents of the store (namespace ``experiments``), written by the replica that
  receives ``PUT``/``DELETE`` and read by every replica, each keeping a copy for :data:`CACHE_SECONDS`.
* An **exposure** is published by the replica that answered to the events topic, keyed by the user id, and
  the answer leaves once the broker acknowledged it: it is then as durable as an event, and ordered with
  that user's events in one partition. Attribution only ever pairs a user's events with the same user's
  exposures, so the partition's order is the embedded mode's log order.
* The **worker** applies exposure records and credits events in the fenced transaction that applies the
  batch's events (:mod:`freshrec.state.redis_fence`): the users' live exposures are loaded, the rules of
  :mod:`freshrec.experiments.attribution` run on them in offset order, and the exposures, first-seen marks
  and tally increments are written with the batch's offsets, all or nothing, once.
* **Results** are read from the tallies (counters of namespace ``experiment_tallies``, one key per
  experiment, one member per variant).

Distinct users per variant are exact: a user counts when a first-seen mark ``experiment NUL variant`` is
added to the user's mark set (kept with the user; with ``retention.user_ttl_days`` it expires with the
user's state, and a user forgotten that way and exposed again counts again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from freshrec.events import Event
from freshrec.experiments.attribution import COUNTED, Attribution, Exposure, Tally
from freshrec.experiments.distinct import Counted
from freshrec.experiments.model import Experiment, ExperimentIn
from freshrec.experiments.registry import Experiments
from freshrec.experiments.results import results
from freshrec.state.redis import RedisState

if TYPE_CHECKING:
    from freshrec.engine import Engine

DECLARED_NS = "experiments"
TALLY_NS = "experiment_tallies"
#: how long a replica answers from its copy of the declarations before reading them again
CACHE_SECONDS = 1.0
_TALLY_FIELDS = ("exposures", "clicked", "carted", "converted", "clicks", "add_to_carts", "purchases")


class SharedExperiments(Experiments):
    """The :class:`Experiments` interface over the shared store (replicas and workers alike)."""

    published = True

    def __init__(self, store: RedisState) -> None:
        self._declared: dict[str, Experiment] = {}
        super().__init__()
        self.store = store
        self._read_at = -CACHE_SECONDS

    # -- declarations ------------------------------------------------------------------------------
    @property
    def declared(self) -> dict[str, Experiment]:
        if time.monotonic() - self._read_at >= CACHE_SECONDS:
            self.refresh()
        return self._declared

    @declared.setter
    def declared(self, value: dict[str, Experiment]) -> None:
        self._declared = value

    def refresh(self) -> None:
        self._declared = {k: _experiment(k, orjson.loads(v)) for k, v in self.store.docs(DECLARED_NS).items()}
        self._read_at = time.monotonic()

    def apply_record(self, record: Mapping[str, Any]) -> None:
        """Declare or end an experiment in the store (read again first: another replica may have)."""
        if record["op"] == "exposure":
            raise ValueError("exposures are applied by workers (SharedExperiments.apply_batch)")
        self.refresh()
        super().apply_record(record)
        experiment = self._declared[record["experiment_id"]]
        self.store.doc_put(DECLARED_NS, experiment.experiment_id, orjson.dumps(experiment.to_json()))

    def get(self, experiment_id: str) -> Experiment:
        """One declaration; one not in this replica's copy is read again at once (a new experiment is
        served by every replica as soon as it is declared; changes and ends reach them within
        :data:`CACHE_SECONDS`)."""
        if experiment_id not in self.declared:
            self.refresh()
        return super().get(experiment_id)

    def any_declared(self) -> bool:
        """Whether any experiment was ever declared (read fresh until one was: declarations are kept)."""
        if not self._declared:
            self.refresh()
        return bool(self._declared)

    # -- what workers do ---------------------------------------------------------------------------
    def on_events(self, events: Sequence[Event], catalog_price: Mapping[str, Any]) -> None:
        """Nothing: workers credit inside their fenced transaction (:meth:`apply_batch`)."""

    def apply_with_events(
        self,
        engine: Engine,
        exposures: Sequence[tuple[int, Mapping[str, Any]]],
        fresh: Sequence[Event],
        positions: Mapping[str, int],
        last: int,
    ) -> None:
        """Apply ``fresh`` events through ``engine`` with the exposures of their records, all in the
        batch ``engine``'s store commits next (a worker's fenced transaction). ``positions`` gives each
        event's place in its partition (``last`` for one not in it), the exposures carry theirs."""
        ordered: list[tuple[int, Mapping[str, Any] | Event]] = [*exposures]
        ordered += [(positions.get(e.event_id, last), e) for e in fresh]
        ordered.sort(key=lambda r: r[0])
        catalog = engine.catalog.items

        def price_of(event: Event) -> float:
            if event.price is not None:
                return event.price
            item = catalog.get(event.item_id)
            return float(item.price) if item is not None and item.price is not None else 0.0

        with self.store.before_next_commit(lambda: self.apply_batch(ordered, price_of)):
            if fresh:
                engine.apply_events(fresh)
            else:
                self.store.begin()
                self.store.commit()

    def apply_batch(
        self,
        records: Sequence[tuple[int, Mapping[str, Any] | Event]],
        price_of: Callable[[Event], float],
    ) -> None:
        """Apply exposure records and credit events, in the given (offset) order, into the open batch."""
        exposures = [r for _, r in records if not isinstance(r, Event)]
        users = sorted(
            {str(r["user_id"]) for r in exposures}
            | {r.user_id for _, r in records if isinstance(r, Event) and r.type in COUNTED}
        )
        if not exposures and not users:
            return
        stored = self.store.exposures_of(users)
        live = Attribution()
        loaded = sorted((e for user in users for e in _decode(stored[user][0])), key=lambda e: (e.at, e.seq))
        for exposure in loaded:
            live.live[exposure.request_id] = exposure
            live.by_user.setdefault(exposure.user_id, {}).setdefault(exposure.experiment_id, []).append(
                exposure
            )
            live.order.append(exposure)
        marks = {user: set(stored[user][1]) for user in users}
        new_users: dict[tuple[str, str], int] = {}
        for seq, record in records:
            if isinstance(record, Event):
                live.credit_events([record], price_of)
                continue
            exposure = _exposure(record, seq)
            live.expose(exposure)
            mark = f"{exposure.experiment_id}\x00{exposure.variant}"
            if mark not in marks[exposure.user_id]:
                marks[exposure.user_id].add(mark)
                self.store.exposure_mark(exposure.user_id, mark)
                key = (exposure.experiment_id, exposure.variant)
                new_users[key] = new_users.get(key, 0) + 1
        for user in users:
            shown = [e for per in live.by_user.get(user, {}).values() for e in per]
            before = stored[user][0]
            if shown:
                ttl = 2 * max(e.window for e in shown) + 60.0
                self.store.exposures_put(user, _encode(shown), ttl)
            elif before is not None:
                self.store.exposures_put(user, None, 0.0)
        for experiment_id, per_variant in live.tallies.items():
            for variant, tally in per_variant.items():
                deltas = {name: float(getattr(tally, name)) for name in _TALLY_FIELDS}
                deltas["revenue"] = tally.revenue
                deltas["revenue_sq"] = tally.revenue_sq
                deltas["users"] = float(new_users.get((experiment_id, variant), 0))
                changed = {k: v for k, v in deltas.items() if v}
                if changed:
                    self.store.add(TALLY_NS, experiment_id, variant, changed)

    # -- reads -------------------------------------------------------------------------------------
    def results(self, experiment_id: str) -> dict[str, Any]:
        experiment = self.get(experiment_id)
        return results(experiment, self.tallies(experiment_id))

    def tallies(self, experiment_id: str) -> dict[str, Tally]:
        out: dict[str, Tally] = {}
        for variant, fields in self.store.members(TALLY_NS, experiment_id).items():
            tally = Tally(users=Counted(round(fields.get("users", 0.0))))
            for name in _TALLY_FIELDS:
                setattr(tally, name, round(fields.get(name, 0.0)))
            tally.revenue = float(fields.get("revenue", 0.0))
            tally.revenue_sq = float(fields.get("revenue_sq", 0.0))
            out[str(variant)] = tally
        return out

    def stats(self) -> dict[str, int]:
        return {"experiments": len(self.declared)}

    def dump(self) -> dict[str, Any]:
        return {}

    def load(self, data: Mapping[str, Any] | None) -> None:
        """Nothing: the store holds the experiments."""


def position(offset: int | None) -> int:
    """A record's place in its partition, from 1 (the log order attribution breaks ties by)."""
    return (offset or 0) + 1


def take_exposure(payload: Any, seq: int, into: list[tuple[int, Mapping[str, Any]]]) -> str | None:
    """None: ``payload`` is no exposure record; "": it is one, added to ``into``; else why it is invalid."""
    if not isinstance(payload, dict) or payload.get("op") != "exposure":
        return None
    problem = exposure_problem(payload)
    if problem is None:
        into.append((seq, payload))
    return problem or ""


def exposure_problem(record: Mapping[str, Any]) -> str | None:
    """Why an exposure record of the events topic cannot be applied (None: it can)."""
    for name in ("request_id", "experiment_id", "variant", "user_id"):
        if not isinstance(record.get(name), str) or not record[name]:
            return f"exposure: {name} must be a non-empty string"
    items = record.get("items")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return "exposure: items must be a list of item ids"
    for name in ("at", "window"):
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return f"exposure: {name} must be a number"
    if record["window"] <= 0:
        return "exposure: window must be positive"
    return None


def _experiment(experiment_id: str, data: Mapping[str, Any]) -> Experiment:
    spec = ExperimentIn.model_validate({k: data[k] for k in Experiment.SPEC_FIELDS})
    experiment = Experiment.of(experiment_id, spec, created_at=float(data["created_at"]))
    experiment.updated_at = float(data["updated_at"])
    experiment.ended_at = None if data.get("ended_at") is None else float(data["ended_at"])
    return experiment


def _exposure(record: Mapping[str, Any], seq: int) -> Exposure:
    return Exposure(
        request_id=str(record["request_id"]),
        experiment_id=str(record["experiment_id"]),
        variant=str(record["variant"]),
        user_id=str(record["user_id"]),
        items=frozenset(record["items"]),
        at=float(record["at"]),
        seq=seq,
        window=float(record["window"]),
    )


def _encode(shown: Iterable[Exposure]) -> bytes:
    return orjson.dumps(
        [
            {
                "r": e.request_id,
                "x": e.experiment_id,
                "v": e.variant,
                "u": e.user_id,
                "i": sorted(e.items),
                "at": e.at,
                "s": e.seq,
                "w": e.window,
                "c": {item: sorted(kinds) for item, kinds in e.credited.items()},
                "rev": e.revenue,
            }
            for e in shown
        ]
    )


def _decode(doc: bytes | None) -> list[Exposure]:
    if doc is None:
        return []
    return [
        Exposure(
            request_id=d["r"],
            experiment_id=d["x"],
            variant=d["v"],
            user_id=d["u"],
            items=frozenset(d["i"]),
            at=float(d["at"]),
            seq=int(d["s"]),
            window=float(d["w"]),
            credited={item: set(kinds) for item, kinds in d["c"].items()},
            revenue=float(d["rev"]),
        )
        for d in orjson.loads(doc)
    ]
