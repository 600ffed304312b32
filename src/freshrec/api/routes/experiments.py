"""``/v1/experiments``: declare, list, end experiments, and read their results."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from freshrec.api.deps import path_id, read_body, require_admin, require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS, body_schema
from freshrec.errors import FieldProblem, InvalidInput
from freshrec.experiments import ExperimentIn, Experiments, serving
from freshrec.experiments.model import EXPERIMENT_ID_MAX

router = APIRouter(tags=["experiments"])
#: largest experiment declaration read
MAX_SPEC_BYTES = 64 * 1024
_SPEC_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema(ExperimentIn)}}}
}


def _registry(request: Request, experiment_id: str | None = None) -> Experiments:
    """What every route starts with: the experiment id checked (when the path has one), the registry."""
    if experiment_id is not None:
        path_id(experiment_id, "experiment_id", EXPERIMENT_ID_MAX)
    registry: Experiments = runtime(request).engine.experiments
    return registry


async def _spec(request: Request) -> ExperimentIn:
    """The body as an experiment declaration (read after the role check: 401 comes before any 422)."""
    body = await read_body(request, MAX_SPEC_BYTES)
    try:
        return ExperimentIn.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            FieldProblem(0, ".".join(str(p) for p in err["loc"]) or "body", err["msg"])
            for err in exc.errors()
        ]
        raise InvalidInput("invalid experiment declaration", problems) from None


@router.put(
    "/v1/experiments/{experiment_id}",
    dependencies=[Depends(require_admin)],
    responses=ERRORS,
    openapi_extra=_SPEC_BODY,
    summary="Declare or change an experiment (its variants, weights, strategies, metric window)",
)
async def put_experiment(experiment_id: str, request: Request) -> JSON:
    _registry(request, experiment_id)
    return JSON(await serving.put(runtime(request), experiment_id, await _spec(request)))


@router.delete(
    "/v1/experiments/{experiment_id}",
    dependencies=[Depends(require_admin)],
    responses=ERRORS,
    summary="End an experiment: nothing is assigned or logged any more, its results are kept",
)
async def end_experiment(experiment_id: str, request: Request) -> JSON:
    _registry(request, experiment_id)
    return JSON(await serving.end(runtime(request), experiment_id))


@router.get(
    "/v1/experiments",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Every experiment, active and ended",
)
async def list_experiments(request: Request) -> JSON:
    return JSON({"experiments": _registry(request).listing()})


@router.get(
    "/v1/experiments/{experiment_id}",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="One experiment's declaration",
)
async def get_experiment(experiment_id: str, request: Request) -> JSON:
    return JSON(_registry(request, experiment_id).get(experiment_id).to_json())


@router.get(
    "/v1/experiments/{experiment_id}/results",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Per variant: users, exposures, CTR, conversion, revenue per exposure, 95% intervals, lift",
)
async def experiment_results(experiment_id: str, request: Request) -> JSON:
    return JSON(_registry(request, experiment_id).results(experiment_id))
