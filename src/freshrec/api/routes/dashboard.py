"""``/dashboard``: the page and its assets (no data in them), and the live pulse it reads (read role)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse

from freshrec.api.deps import require_read, runtime
from freshrec.api.responses import JSON
from freshrec.api.schemas import ERRORS
from freshrec.dashboard import STATIC
from freshrec.dashboard.pulse import Pulse
from freshrec.errors import NotFound

router = APIRouter(tags=["dashboard"])
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "favicon.svg": "image/svg+xml"}
#: a stream ends after this long and the page reconnects (a server stopping never waits on an old tab)
STREAM_SECONDS = 300.0


def pulse(request: Request) -> Pulse:
    app = request.app
    if not hasattr(app.state, "pulse"):
        app.state.pulse = Pulse(runtime(request))
    found: Pulse = app.state.pulse
    return found


@router.get("/dashboard", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text())


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"dashboard asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get(
    "/dashboard/pulse",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="What the dashboard shows: ingestion, freshness, trending, experiments, state and model",
)
async def pulse_now(request: Request) -> JSON:
    return JSON(pulse(request).snapshot())


@router.get(
    "/dashboard/titles",
    dependencies=[Depends(require_read)],
    responses=ERRORS,
    summary="Titles of catalog items (null for items without one or not in the catalog)",
)
async def titles(request: Request, id: Annotated[list[str], Query(max_length=100)]) -> JSON:
    catalog = runtime(request).engine.catalog
    found = {i: catalog.get(i) for i in id}
    return JSON({i: None if item is None else item.title for i, item in found.items()})


@router.get("/dashboard/stream", dependencies=[Depends(require_read)], include_in_schema=False)
async def stream(request: Request) -> StreamingResponse:
    """Server-sent events: the pulse once a second."""
    shared = pulse(request)

    async def beats() -> AsyncIterator[bytes]:
        ends = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < ends and not await request.is_disconnected():
            yield b"data: " + orjson.dumps(shared.snapshot()) + b"\n\n"
            await asyncio.sleep(1.0)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(beats(), media_type="text/event-stream", headers=headers)
