"""The experiments of one engine: declarations, exposures and tallies, changed only through journal records.

Every change is a record of the engine's durable log (``experiment_put``, ``experiment_end``,
``exposure``), written before it is applied, and the whole of it is part of the engine's snapshot; so a
restart, however the process stopped, rebuilds the same experiments, exposures and tallies, with events
and exposures credited in the order the log holds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from freshrec.errors import FieldProblem, InvalidInput, NotFound
from freshrec.events import Event
from freshrec.experiments.attribution import Attribution, Exposure
from freshrec.experiments.model import Experiment, ExperimentIn, VariantIn
from freshrec.experiments.results import results

OPS = frozenset({"experiment_put", "experiment_end", "exposure"})


class Experiments:
    #: False: exposures are journaled and applied here; True: published to the events topic for workers
    published = False

    def __init__(self) -> None:
        self.declared: dict[str, Experiment] = {}
        self.attribution = Attribution()

    # -- records (what the journal holds) ---------------------------------------------------------------
    def put_record(
        self, experiment_id: str, spec: ExperimentIn, strategies: Iterable[str], at: float
    ) -> dict[str, Any]:
        """The record declaring (or changing) an experiment, after checking it against this engine."""
        known = set(strategies)
        problems = [
            FieldProblem(0, f"variants.{i}.strategy", f"unknown strategy {v.strategy!r}")
            for i, v in enumerate(spec.variants)
            if v.strategy not in known
        ]
        if problems:
            available = ", ".join(sorted(known))
            raise InvalidInput(f"unknown strategy in the variants; available: {available}", problems)
        if spec.active and spec.surface is not None:
            for other in self.declared.values():
                if other.experiment_id != experiment_id and other.active and other.surface == spec.surface:
                    raise InvalidInput(
                        f"experiment {other.experiment_id!r} already serves surface {spec.surface!r}; "
                        "end it or choose another surface",
                        status=409,
                    )
        return {"op": "experiment_put", "experiment_id": experiment_id, "at": at, "spec": spec.model_dump()}

    def end_record(self, experiment_id: str, at: float) -> dict[str, Any]:
        self.get(experiment_id)
        return {"op": "experiment_end", "experiment_id": experiment_id, "at": at}

    @staticmethod
    def exposure_record(
        request_id: str,
        experiment: Experiment,
        variant: VariantIn,
        user_id: str,
        items: Sequence[str],
        at: float,
    ) -> dict[str, Any]:
        """An answer of ``experiment``; the items are in the order shown (position = index), ``window``
        the experiment's metric window then (what a distributed worker attributes with)."""
        return {
            "op": "exposure",
            "request_id": request_id,
            "experiment_id": experiment.experiment_id,
            "variant": variant.name,
            "user_id": user_id,
            "items": list(items),
            "at": at,
            "window": experiment.metric_window_seconds,
        }

    def apply_record(self, record: Mapping[str, Any]) -> None:
        op = record["op"]
        experiment_id = record["experiment_id"]
        if op == "experiment_put":
            spec = ExperimentIn.model_validate(record["spec"])
            old = self.declared.get(experiment_id)
            new = Experiment.of(experiment_id, spec, created_at=float(record["at"]))
            if old is not None:
                new.created_at = old.created_at
            new.updated_at = float(record["at"])
            self.declared[experiment_id] = new
        elif op == "experiment_end":
            experiment = self.declared[experiment_id]
            experiment.active = False
            experiment.ended_at = float(record["at"])
        elif op == "exposure":
            window = self.declared[experiment_id].metric_window_seconds
            self.attribution.expose(
                Exposure(
                    request_id=record["request_id"],
                    experiment_id=experiment_id,
                    variant=record["variant"],
                    user_id=record["user_id"],
                    items=frozenset(record["items"]),
                    at=float(record["at"]),
                    seq=0,
                    window=window,
                )
            )
        else:
            raise ValueError(f"unknown experiment record {op!r}")

    # -- events ------------------------------------------------------------------------------------------
    def on_events(self, events: Sequence[Event], catalog_price: Mapping[str, Any]) -> None:
        """Credit exposures with applied events (the engine calls this after each applied batch)."""
        if not self.attribution.live:
            return

        def price_of(event: Event) -> float:
            if event.price is not None:
                return event.price
            item = catalog_price.get(event.item_id)
            return float(item.price) if item is not None and item.price is not None else 0.0

        self.attribution.credit_events(events, price_of)

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, experiment_id: str) -> Experiment:
        experiment = self.declared.get(experiment_id)
        if experiment is None:
            raise NotFound(f"experiment {experiment_id!r}")
        return experiment

    def for_surface(self, surface: str) -> Experiment:
        for experiment in self.declared.values():
            if experiment.active and experiment.surface == surface:
                return experiment
        raise NotFound(f"an active experiment for surface {surface!r}")

    def results(self, experiment_id: str) -> dict[str, Any]:
        experiment = self.get(experiment_id)
        return results(experiment, self.attribution.tallies.get(experiment_id, {}))

    def listing(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in sorted(self.declared.values(), key=lambda e: e.experiment_id)]

    def stats(self) -> dict[str, int]:
        return {"experiments": len(self.declared), "live_exposures": len(self.attribution.live)}

    # -- snapshots ---------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"declared": self.declared, "attribution": self.attribution}

    def load(self, data: Mapping[str, Any] | None) -> None:
        if data is None:
            return
        self.declared = dict(data["declared"])
        self.attribution = data["attribution"]
