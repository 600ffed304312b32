"""``create_app(engine)``: routes translate HTTP to engine calls and nothing more."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from freshrec.api.docs import add_offline_docs
from freshrec.api.graphql import graphql_router
from freshrec.api.openapi import install_guard
from freshrec.api.problems import capped_body
from freshrec.api.responses import JSON
from freshrec.api.routes import admin, dashboard, events, experiments, items, meta, related, users
from freshrec.catalog import Item, ItemIn
from freshrec.engine import Engine, events_record, items_record
from freshrec.errors import InvalidInput, NotFound, Stopped
from freshrec.events import Event
from freshrec.experiments.serving import declare_configured
from freshrec.metrics import Metrics
from freshrec.ranker.service import catalog_records
from freshrec.ranking.base import Recommendation
from freshrec.storage.datadir import DataDir
from freshrec.storage.log import LogWriteFailed

log = logging.getLogger(__name__)


class Service(Protocol):
    """A task running beside the server for its lifetime (a catalog change feed, a feature sink)."""

    async def run(self, runtime: Runtime) -> None:
        """Work until cancelled; writes go through ``runtime`` (its write lock and journal)."""

    def close(self) -> None:
        """Release connections (after :meth:`run` was cancelled)."""


class Runtime:
    """What the routes share: the engine, its data directory, the write lock, metrics."""

    def __init__(self, engine: Engine, datadir: DataDir | None) -> None:
        self.engine = engine
        self.datadir = datadir
        self.write_lock = asyncio.Lock()
        self.metrics = Metrics()
        self.started = time.time()
        self.services: list[Service] = []
        #: set at shutdown: a training running in a worker thread gives up at its next progress step
        #: (the process waits for its threads before it exits, so a long replay must not hold it)
        self.stopping = threading.Event()

    def unless_stopping(self, done: int, total: int) -> None:
        """A training's progress callback: raises :class:`Stopped` once the server is stopping."""
        if self.stopping.is_set():
            raise Stopped(f"stopped at step {done} of {total}: the server is stopping")

    async def prepare_items(self, items: list[ItemIn]) -> list[ItemIn]:
        """Compute the items' embeddings in a worker thread (reads go on meanwhile)."""
        if self.engine.content.embedder is None:
            return items
        return await asyncio.to_thread(self.engine.prepare_items, items)

    # -- writes: the embedded runtime journals and applies; a distributed one publishes to Kafka ----------
    async def write_events(self, events: Sequence[Event]) -> int:
        """Make ``events`` durable and applied; returns how many were new."""
        engine = self.engine
        async with self.write_lock:
            fresh = engine.new_events(events)
            at = time.time()
            await self.journal_and_apply(
                [events_record(fresh, at)] if fresh else [], lambda: engine.apply_events(fresh, at)
            )
        return len(fresh)

    async def accept_events(self, events: Sequence[Event]) -> int | None:
        """Write validated events from any front end (REST, GraphQL) and count them in the metrics.

        Returns how many were already applied before (duplicates by ``event_id``), or None when this
        runtime cannot tell at acknowledgement time (distributed mode: the workers de-duplicate).
        """
        applied = await self.write_events(events)
        self.metrics.events_accepted.inc(len(events))
        self.metrics.events_applied.inc(applied)
        return len(events) - applied if self.applied_on_ack else None

    async def write_items(self, items: list[ItemIn], stamp: float) -> list[Item]:
        """Upsert prepared items (embeddings computed); returns them as stored."""
        async with self.write_lock:
            stored: list[Item] = await self.journal_and_apply(
                [items_record(items, stamp)], lambda: self.engine.apply_items(items, stamp)
            )
        return stored

    async def write_delete(self, item_id: str) -> None:
        async with self.write_lock:
            await self.journal_and_apply(
                [{"op": "delete_item", "item_id": item_id}], lambda: self.engine.apply_delete(item_id)
            )

    #: 202 once the write is durable *and applied* (embedded); a distributed runtime says "published"
    applied_on_ack = True
    #: experiments are declared and exposures logged through this runtime's journal
    experiments_supported = True
    #: exceptions meaning the state store is unreachable: answered 503 (never 500) by every route
    unavailable_errors: tuple[type[Exception], ...] = ()

    def status(self) -> dict[str, Any]:
        """How this process runs, for ``/health``."""
        return {"mode": "embedded"}

    def close(self) -> None:
        """Release what the runtime holds (called once at shutdown)."""

    def models_swapped(self) -> None:
        """A retrain swapped a new model in (the writer of several processes tells its readers)."""

    async def start(self) -> None:
        """Before the first request: declare the settings file's experiments (journaled)."""
        await declare_configured(self)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """The jobs running beside the server: housekeeping, the CF and ranker schedules."""
        return [self.housekeeping(), self.cf_schedule(), self.ranker_schedule()]

    # -- reads ----------------------------------------------------------------------------------------
    def before_read(self) -> None:
        """Bring process-local mirrors up to date (distributed mode); nothing in embedded mode."""

    def recommend(
        self, user_id: str, strategy: str, **options: Any
    ) -> tuple[list[Recommendation], str | None]:
        """The user's recommendations and, when they could not be computed fresh, why (a degraded mode)."""
        return self.engine.recommend(user_id, strategy, **options), None

    async def journal_and_apply(self, records: list[dict[str, Any]], apply: Callable[[], Any]) -> Any:
        """Make ``records`` durable (off the event loop), then apply them; caller holds the write lock."""
        if self.datadir is not None and records:
            await asyncio.to_thread(self.datadir.append, records)
        result = apply()
        if self.datadir is not None:
            self.datadir.maybe_snapshot()
        return result

    async def housekeeping(self, every: float = 60.0) -> None:
        """Expire windows and forget old event ids even when no events arrive (wall clock moves on).

        It also moves the long-lived state out of the cyclic garbage collector's sight (``gc.freeze``):
        with millions of objects, a full collection would otherwise pause requests for hundreds of ms.
        """
        while True:
            gc.freeze()
            await asyncio.sleep(every)
            async with self.write_lock:
                self.engine.expire()

    async def retrain(self) -> dict[str, Any]:
        """Train the CF model on everything applied so far and swap it in; serving goes on meanwhile.

        Writes wait while the interactions are copied out (reads don't); training runs in a worker thread.
        """
        engine = self.engine
        cf = engine.cf
        if not cf.settings.enabled:
            raise InvalidInput("collaborative filtering is disabled (cf.enabled = false)", status=409)
        if cf.training:
            raise InvalidInput("a CF training is already running", status=409)
        started = time.perf_counter()
        async with self.write_lock:
            data = await asyncio.to_thread(cf.collect, engine.store, engine.total_applied()[0])
        collected = time.perf_counter() - started
        model = await asyncio.to_thread(cf.fit, data, self.unless_stopping)
        if model is not None:
            self.models_swapped()
        out: dict[str, Any] = {
            "trained": model is not None,
            "collect_seconds": round(collected, 3),
            "model": None if model is None else model.info.to_json(),
        }
        if engine.ranker.settings.enabled and self.datadir is not None and not engine.ranker.training:
            out["ranker"] = await self.retrain_ranker()
        return out

    async def retrain_ranker(self) -> dict[str, Any] | None:
        """Train the ranker from a replay of the data directory's log and swap it in (None: no log)."""
        engine = self.engine
        if self.datadir is None:
            return None
        async with self.write_lock:
            events = await asyncio.to_thread(self.datadir.logged_events)
            items, dim = catalog_records(engine)
        stop = self.unless_stopping
        train = engine.ranker.train
        model = await asyncio.to_thread(train, engine.settings, items, events, dim, stop, stop)
        if model is not None:
            self.models_swapped()
        return None if model is None else model.info.to_json()

    async def ranker_schedule(self) -> None:
        """Retrain the ranker every ``ranker.retrain_every_seconds`` if new events arrived."""
        ranker = self.engine.ranker
        every = ranker.settings.retrain_every_seconds
        if not ranker.settings.enabled or every <= 0 or self.datadir is None:
            return
        while True:
            await asyncio.sleep(every)
            applied = self.engine.total_applied()[0]
            trained_on = ranker.model.info.events if ranker.model is not None else 0
            if applied < ranker.settings.min_events or applied <= trained_on or ranker.training:
                continue
            try:
                await self.retrain_ranker()
            except Stopped:
                return
            except Exception:
                log.exception("scheduled ranker retrain failed; the current ranker keeps serving")

    async def cf_schedule(self) -> None:
        """Retrain every ``cf.retrain_every_seconds`` if enough new events arrived (sooner with no model)."""
        cf = self.engine.cf
        every = cf.settings.retrain_every_seconds
        if not cf.settings.enabled or every <= 0:
            return
        while True:
            await asyncio.sleep(every if cf.model is not None else min(every, 30.0))
            trained_on = cf.model.info.events if cf.model is not None else 0
            if (
                self.engine.total_applied()[0] - trained_on < max(1, cf.settings.min_new_events)
                or cf.training
            ):
                continue
            try:
                await self.retrain()
            except Stopped:
                return
            except Exception:
                log.exception("scheduled CF retrain failed; the current model keeps serving")


def create_app(engine: Engine, datadir: DataDir | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The HTTP app of ``engine``; ``runtime`` replaces the embedded one (distributed mode)."""
    runtime = runtime if runtime is not None else Runtime(engine, datadir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        background = [asyncio.create_task(job) for job in runtime.background()]
        services = [asyncio.create_task(s.run(runtime)) for s in runtime.services]
        yield
        runtime.stopping.set()
        for job in background:
            job.cancel()
        for task in services:
            task.cancel()
        await asyncio.gather(*services, return_exceptions=True)
        for service in runtime.services:
            service.close()
        async with runtime.write_lock:
            if datadir is not None:
                datadir.close()
            runtime.close()

    app = FastAPI(
        title="freshrec",
        summary="Real-time recommendations: feature views updated per event, answered in milliseconds.",
        version="0.1.0",
        default_response_class=JSON,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    add_offline_docs(app)
    install_guard(app, engine.settings.server)
    for module in (events, related, items, users, meta, admin, experiments, dashboard):
        app.include_router(module.router)
    app.include_router(graphql_router(), tags=["graphql"])

    @app.exception_handler(InvalidInput)
    async def invalid_input(request: Request, exc: InvalidInput) -> JSON:
        return JSON(capped_body(exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSON:
        return JSON({"error": f"not found: {exc.what}", "details": []}, status_code=404)

    async def unavailable(request: Request, exc: Exception) -> JSON:
        body = {"error": f"the state store is unreachable, try again shortly: {exc}", "details": []}
        return JSON(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(LogWriteFailed)
    async def log_write_failed(request: Request, exc: LogWriteFailed) -> JSON:
        log.error("%s", exc)
        body = {"error": f"the data directory cannot be written, nothing was stored: {exc}", "details": []}
        return JSON(body, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Stopped)
    async def stopping(request: Request, exc: Stopped) -> JSON:
        body = {"error": f"the server is stopping, try again shortly: {exc}", "details": []}
        return JSON(body, status_code=503, headers={"Retry-After": "1"})

    for error in runtime.unavailable_errors:
        app.add_exception_handler(error, unavailable)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSON:
        details = [
            {
                "index": 0,
                "field": ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        return JSON({"error": "invalid request parameters", "details": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        return JSON({"error": str(exc.detail), "details": []}, status_code=exc.status_code)

    app.add_middleware(TimingMiddleware, metrics=runtime.metrics)
    return app


class TimingMiddleware:
    """Records request latency per route template (pure ASGI: no per-request object churn)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )
