"""``/v1/experiments``: declare, list, end experiments, and read their results."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from freshrec.api.deps import path_id, require_admin, require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS
from freshrec.experiments import ExperimentIn, serving
from freshrec.experiments.model import EXPERIMENT_ID_MAX

router = APIRouter(tags=["experiments"])


@router.put(
    "/v1/experiments/{experiment_id}",
    dependencies=[Depends(require_admin)],
    responses=ERRORS,
    summary="Declare or change an experiment (its variants, weights, strategies, metric window)",
)
async def put_experiment(experiment_id: str, spec: ExperimentIn, request: Request) -> JSON:
    path_id(experiment_id, "experiment_id", EXPERIMENT_ID_MAX)
    return JSON(await serving.put(runtime(request), experiment_id, spec))


@router.delete(
    "/v1/experiments/{experiment_id}",
    dependencies=[Depends(require_admin)],
    responses=ERRORS,
    summary="End an experiment: nothing is assigned or logged any more, its results are kept",
)
async def end_experiment(experiment_id: str, request: Request) -> JSON:
    return JSON(await serving.end(runtime(request), experiment_id))


@router.get(
    "/v1/experiments",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Every experiment, active and ended",
)
async def list_experiments(request: Request) -> JSON:
    return JSON({"experiments": runtime(request).engine.experiments.listing()})


@router.get(
    "/v1/experiments/{experiment_id}",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="One experiment's declaration",
)
async def get_experiment(experiment_id: str, request: Request) -> JSON:
    return JSON(runtime(request).engine.experiments.get(experiment_id).to_json())


@router.get(
    "/v1/experiments/{experiment_id}/results",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Per variant: users, exposures, CTR, conversion, revenue per exposure, 95% intervals, lift",
)
async def experiment_results(experiment_id: str, request: Request) -> JSON:
    return JSON(runtime(request).engine.experiments.results(experiment_id))
