"""Models: train on demand, and what is serving."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from freshrec.api.deps import require_admin, require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS

router = APIRouter(tags=["models"])


@router.post(
    "/v1/admin/train",
    dependencies=[Depends(require_admin)],
    responses=ERRORS,
    summary="Retrain CF (and, with a data directory, the hybrid ranker) now; returns once they serve",
)
async def train(request: Request) -> JSON:
    return JSON(await runtime(request).retrain())


@router.get(
    "/v1/admin/models",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="The models serving now and how they were trained",
)
async def models(request: Request) -> JSON:
    engine = runtime(request).engine
    body: dict[str, Any] = {
        "cf": engine.cf.status(),
        "ranker": engine.ranker.status(),
        "applied_events": engine.total_applied()[0],
    }
    return JSON(body)
