"""The catalog: ``PUT|GET|DELETE /v1/items/{item_id}``, ``POST /v1/items``."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request

from freshrec.api.deps import path_id, read_body, require_read, require_write, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS
from freshrec.catalog import ItemIn, validate_item, validate_items
from freshrec.errors import InvalidInput, NotFound
from freshrec.events import ITEM_ID_MAX

router = APIRouter(tags=["items"])
_ITEM_SCHEMA = ItemIn.model_json_schema()


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None


@router.put(
    "/v1/items/{item_id:path}",
    dependencies=[Depends(require_write)],
    responses=ERRORS,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": _ITEM_SCHEMA}}}},
    summary="Insert or replace one item",
)
async def put_item(item_id: str, request: Request) -> JSON:
    path_id(item_id, "item_id", ITEM_ID_MAX)
    rt = runtime(request)
    limits = rt.engine.settings.server.limits
    payload = _decode(await read_body(request, limits.max_items_body_bytes))
    if not isinstance(payload, dict):
        raise InvalidInput("expected an item object")
    if payload.get("item_id", item_id) != item_id:
        raise InvalidInput(
            f"item_id in the body ({payload['item_id']!r}) differs from the path ({item_id!r})"
        )
    prepared = await rt.prepare_items([validate_item({**payload, "item_id": item_id})])
    stamp = time.time()
    stored = await rt.write_items(prepared, stamp)
    return JSON(stored[0].to_json(), status_code=200 if rt.applied_on_ack else 202)


@router.post(
    "/v1/items",
    dependencies=[Depends(require_write)],
    responses=ERRORS,
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "array", "items": _ITEM_SCHEMA}}}}
    },
    summary="Insert or replace many items (all-or-nothing)",
)
async def post_items(request: Request) -> JSON:
    rt = runtime(request)
    limits = rt.engine.settings.server.limits
    payload = _decode(await read_body(request, limits.max_items_body_bytes))
    items = await rt.prepare_items(validate_items(payload, limits.max_items_batch))
    stamp = time.time()
    await rt.write_items(items, stamp)
    rt.metrics.items.set(len(rt.engine.catalog))
    return JSON(
        {"upserted": len(items), "item_ids": [i.item_id for i in items]},
        status_code=200 if rt.applied_on_ack else 202,
    )


@router.get(
    "/v1/items/{item_id:path}", dependencies=[Depends(require_read)], responses=ERRORS, summary="One item"
)
async def get_item(item_id: str, request: Request) -> JSON:
    item = runtime(request).engine.catalog.get(item_id)
    if item is None:
        raise NotFound(f"item {item_id!r}")
    return JSON(item.to_json())


@router.delete(
    "/v1/items/{item_id:path}",
    dependencies=[Depends(require_write)],
    responses=ERRORS,
    summary="Remove an item",
)
async def delete_item(item_id: str, request: Request) -> JSON:
    rt = runtime(request)
    if rt.engine.catalog.get(item_id) is None:
        raise NotFound(f"item {item_id!r}")
    await rt.write_delete(item_id)
    return JSON({"deleted": item_id}, status_code=200 if rt.applied_on_ack else 202)
