"""``GET /v1/users/{user_id}/recommendations`` and ``/profile``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from freshrec.api.deps import DEGRADED_HEADER, path_id, request_id, require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS, Recommendations
from freshrec.events import USER_ID_MAX
from freshrec.experiments import serving

router = APIRouter(tags=["users"], dependencies=[Depends(require_read)])


@router.get(
    "/v1/users/{user_id:path}/recommendations",
    responses={200: {"model": Recommendations}, **ERRORS},
    summary="Top-k items for a user",
)
async def user_recommendations(
    user_id: str,
    request: Request,
    k: Annotated[int, Query(ge=1, description="How many items.")] = 20,
    strategy: Annotated[
        str | None,
        Query(
            description="hybrid (default), personalized, session, trending_for_you, trending, covisit, "
            "similar_content, cf"
        ),
    ] = None,
    category: Annotated[str | None, Query(description="Only items of this category.")] = None,
    explain: Annotated[bool, Query(description="Include each item's score components.")] = False,
    exclude_purchased: Annotated[bool, Query(description="Leave out items the user bought.")] = True,
    experiment: Annotated[
        str | None, Query(description="Answer with the user's variant of this experiment (logged).")
    ] = None,
    surface: Annotated[
        str | None, Query(description="Answer through the active experiment of this surface, if any.")
    ] = None,
) -> JSON:
    path_id(user_id, "user_id", USER_ID_MAX)
    rt = runtime(request)
    options = {
        "k": k,
        "category": category or None,
        "exclude_purchased": exclude_purchased,
        "explain": explain,
    }
    rid = request_id()
    variant: dict[str, str | None] = {}
    if experiment is not None or surface is not None:
        answer = await serving.recommend(rt, user_id, rid, experiment, surface, **options)
        name, recs, degraded = answer.strategy, answer.recommendations, answer.degraded
        variant = {"experiment": answer.experiment.experiment_id, "variant": answer.variant}
    else:
        name = strategy or rt.engine.settings.strategies.default
        recs, degraded = rt.recommend(user_id, name, **options)
    items = (
        [{"item_id": r.item_id, "score": r.score, "reasons": r.reasons} for r in recs]
        if explain
        else [{"item_id": r.item_id, "score": r.score} for r in recs]
    )
    body = {"user_id": user_id, "strategy": name, "request_id": rid, **variant, "items": items}
    if degraded is None:
        return JSON(body)
    return JSON({**body, "degraded": degraded}, headers={DEGRADED_HEADER: degraded})


@router.get("/v1/users/{user_id:path}/profile", responses=ERRORS, summary="What freshrec knows about a user")
async def user_profile(
    user_id: str, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> JSON:
    return JSON(runtime(request).engine.profile(path_id(user_id, "user_id", USER_ID_MAX), limit=limit))
