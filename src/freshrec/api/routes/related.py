"""``GET /v1/items/{item_id}/recommendations``: items related to an item."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from freshrec.api.deps import path_id, request_id, require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS
from freshrec.engine import Engine
from freshrec.events import ITEM_ID_MAX, USER_ID_MAX

router = APIRouter(tags=["items"], dependencies=[Depends(require_read)])


@router.get(
    "/v1/items/{item_id:path}/recommendations",
    responses=ERRORS,
    summary="Items related to an item (covisit, also_bought, similar_content, cf)",
)
async def item_recommendations(
    item_id: str,
    request: Request,
    k: Annotated[int, Query(ge=1, description="How many items.")] = 10,
    strategy: Annotated[
        str, Query(description="covisit (default), also_bought, similar_content, cf")
    ] = "covisit",
    user_id: Annotated[str | None, Query(description="Leave out what this user bought.")] = None,
    category: Annotated[str | None, Query(description="Only items of this category.")] = None,
    explain: Annotated[bool, Query(description="Include each item's reasons.")] = False,
) -> JSON:
    path_id(item_id, "item_id", ITEM_ID_MAX)
    if user_id is not None:
        path_id(user_id, "user_id", USER_ID_MAX)
    engine = runtime(request).engine
    return JSON(related_answer(engine, item_id, strategy, k, user_id, category, explain))


def related_answer(
    engine: Engine,
    item_id: str,
    strategy: str,
    k: int,
    user_id: str | None,
    category: str | None,
    explain: bool,
) -> dict[str, Any]:
    """The body of an item's recommendations (this route and the fast lane, ``api/fast.py``)."""
    recs = engine.recommend_for_item(
        item_id, strategy, k=k, user_id=user_id, category=category or None, explain=explain
    )
    items: list[dict[str, Any]] = []
    for rec in recs:
        entry: dict[str, Any] = {"item_id": rec.item_id, "score": rec.score}
        if strategy == "covisit":
            entry["frequency"] = int(rec.score)
        elif strategy == "also_bought":
            entry["users"] = int(rec.score)
        if explain:
            entry["reasons"] = rec.reasons
        items.append(entry)
    return {"item_id": item_id, "strategy": strategy, "request_id": request_id(), "items": items}
