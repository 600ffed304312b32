"""Trending, raw views, health and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from freshrec.api.deps import require_metrics, require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS
from freshrec.errors import InvalidInput

if TYPE_CHECKING:
    from freshrec.api.app import Runtime

router = APIRouter()


@router.get(
    "/v1/trending",
    tags=["trending"],
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Items trending in the current window",
)
async def trending(
    request: Request,
    k: Annotated[int, Query(ge=1)] = 20,
    category: Annotated[str | None, Query()] = None,
) -> JSON:
    return JSON(runtime(request).engine.trending(k=k, category=category or None))


@router.get(
    "/v1/views/{view}",
    tags=["views"],
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Raw rows of a feature view (of one user or item)",
)
async def view_rows(
    view: str,
    request: Request,
    user_id: Annotated[str | None, Query(description="For views keyed by user.")] = None,
    item_id: Annotated[str | None, Query(description="For views keyed by item.")] = None,
    category: Annotated[
        str | None, Query(description="For views keyed by category (category_cross_affinity).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0, description="Rows to skip (pages through a whole view).")] = 0,
) -> JSON:
    engine = runtime(request).engine
    known = engine.views.get(view)
    key = None
    if known is not None:
        wanted = known.keyed_by
        given = {"user_id": user_id, "item_id": item_id, "category": category}
        for other, value in given.items():
            if other != wanted and value is not None:
                raise InvalidInput(f"view {view!r} is keyed by {wanted}, not {other}")
        key = given.get(wanted)
    rows = engine.view_rows(view, key)
    body = {"view": view, "keyed_by": known.keyed_by if known is not None else None}
    return JSON({**body, "rows": rows[offset : offset + limit], "total": len(rows)})


@router.get("/health", tags=["meta"], summary="Liveness and a few numbers")
async def health(request: Request) -> JSON:
    return JSON(health_body(runtime(request)))


def health_body(rt: Runtime) -> dict[str, Any]:
    """The body of ``/health`` (this route and the fast lane, ``api/fast.py``)."""
    try:
        body = {"status": "ok", **rt.status(), **rt.engine.stats()}
    except rt.unavailable_errors as exc:
        body = {"status": "degraded", **rt.status(), "error": f"state store unreachable: {exc}"}
    if rt.datadir is not None:
        body["data_dir"] = str(rt.datadir.path)
    return body


@router.get(
    "/metrics",
    tags=["meta"],
    dependencies=[Depends(require_metrics)],
    response_class=PlainTextResponse,
    responses=ERRORS,
    summary="Prometheus metrics (the role `server.metrics_role` names; open by default)",
)
async def metrics(request: Request) -> Response:
    rt = runtime(request)
    rt.metrics.items.set(len(rt.engine.catalog))
    rt.metrics.observe_state(rt.engine.stats())
    ranker = rt.engine.ranker.model
    rt.metrics.observe_ranker(None if ranker is None else ranker.info.to_json())
    if rt.datadir is not None:
        rt.metrics.log_bytes.set(rt.datadir.log.size_bytes())
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
