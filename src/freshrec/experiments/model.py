"""What an experiment is, and which variant a user is in.

A user's variant is a pure function of the experiment id, the user id and the variants' weights: the
SHA-256 of ``"<experiment_id>\\x1f<user_id>"`` read as a number in [0, 1) picks a variant by its share of
the total weight. The same user lands in the same variant on every call, after a restart and on every
replica; changing the weights moves only the users whose point crosses a boundary.

>>> spec = ExperimentIn.model_validate({"variants": [
...     {"name": "control", "weight": 50, "strategy": "personalized"},
...     {"name": "fresh", "weight": 50, "strategy": "hybrid"}]})
>>> experiment = Experiment.of("home-1", spec, created_at=0.0)
>>> experiment.assign("u-42").name == experiment.assign("u-42").name
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EXPERIMENT_ID_MAX = 128
#: the options of ``engine.recommend`` a variant may fix (the request's own values apply otherwise)
VARIANT_PARAMS = frozenset({"category", "exclude_purchased"})


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    weight: float = Field(gt=0, allow_inf_nan=False, description="Share of users, relative to the others.")
    strategy: str = Field(min_length=1, max_length=64, description="The user strategy this variant serves.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Fixed recommendation options: category, exclude_purchased."
    )

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - VARIANT_PARAMS)
        if unknown:
            raise ValueError(f"unknown params {unknown}; a variant may set {sorted(VARIANT_PARAMS)}")
        if "exclude_purchased" in value and not isinstance(value["exclude_purchased"], bool):
            raise ValueError("params.exclude_purchased must be true or false")
        if "category" in value and not (value["category"] is None or isinstance(value["category"], str)):
            raise ValueError("params.category must be a string")
        return value


class ExperimentIn(BaseModel):
    """The body of ``PUT /v1/experiments/{experiment_id}``."""

    model_config = ConfigDict(extra="forbid")

    variants: list[VariantIn] = Field(min_length=2, max_length=16)
    metric_window_seconds: float = Field(
        1800.0, gt=0, allow_inf_nan=False, description="How long after an exposure its items can be credited."
    )
    active: bool = True
    surface: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Answers ?surface=<this> without ?experiment= (one active experiment per surface).",
    )
    description: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentIn:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self


@dataclass(slots=True)
class Experiment:
    """A declared experiment; the first variant is the baseline lifts are measured against."""

    #: the fields of a declaration (the body of PUT), as :meth:`spec` gives them
    SPEC_FIELDS = ("variants", "metric_window_seconds", "active", "surface", "description")

    experiment_id: str
    variants: list[VariantIn]
    metric_window_seconds: float
    active: bool
    surface: str | None
    description: str | None
    created_at: float
    updated_at: float
    ended_at: float | None = None
    _bounds: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, experiment_id: str, spec: ExperimentIn, created_at: float) -> Experiment:
        experiment = cls(
            experiment_id=experiment_id,
            variants=list(spec.variants),
            metric_window_seconds=spec.metric_window_seconds,
            active=spec.active,
            surface=spec.surface,
            description=spec.description,
            created_at=created_at,
            updated_at=created_at,
        )
        experiment._bounds = _cumulative(experiment.variants)
        return experiment

    def assign(self, user_id: str) -> VariantIn:
        """The user's variant (deterministic; see the module docstring)."""
        point = unit_hash(self.experiment_id, user_id) * self._bounds[-1]
        for variant, bound in zip(self.variants, self._bounds, strict=True):
            if point < bound:
                return variant
        return self.variants[-1]

    def variant(self, name: str) -> VariantIn | None:
        return next((v for v in self.variants if v.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "variants": [v.model_dump() for v in self.variants],
            "metric_window_seconds": self.metric_window_seconds,
            "active": self.active,
            "surface": self.surface,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "ended_at": self.ended_at,
        }

    def spec(self) -> dict[str, Any]:
        """The declaration, as a journal record holds it."""
        data = self.to_json()
        return {k: data[k] for k in self.SPEC_FIELDS}


def unit_hash(experiment_id: str, user_id: str) -> float:
    """A point in [0, 1) fixed by the experiment and the user (the first 8 bytes of a SHA-256)."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _cumulative(variants: list[VariantIn]) -> list[float]:
    total = 0.0
    out = []
    for variant in variants:
        total += variant.weight
        out.append(total)
    return out
