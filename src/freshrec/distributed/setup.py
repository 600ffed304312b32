"""Wiring of the distributed processes: an engine on the shared state, the API replica, the worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from freshrec.config import Settings
from freshrec.distributed.catalog import StoreCatalog
from freshrec.engine import Engine
from freshrec.state.base import open_state

if TYPE_CHECKING:
    from fastapi import FastAPI

    from freshrec.cf.model import CFModel
    from freshrec.cf.train import Progress


def is_distributed(settings: Settings) -> bool:
    return settings.state.startswith(("redis://", "rediss://", "valkey://"))


def open_engine(settings: Settings) -> tuple[Engine, StoreCatalog]:
    """An engine on the shared state, with the catalog mirrored and the newest CF model loaded."""
    if not is_distributed(settings):
        raise ValueError(f"distributed mode needs a shared state URL (redis://...), not {settings.state!r}")
    store = open_state(settings.state)
    shared = StoreCatalog(store)
    engine = Engine(settings, store, shared)
    engine.sync_catalog()
    if settings.cf.enabled:
        engine.cf.model = shared.get_model()
    return engine, shared


def api_app(settings: Settings) -> FastAPI:
    """An API replica: reads the shared state, publishes writes to Kafka."""
    from freshrec.api import create_app
    from freshrec.distributed.kafka import Publisher, ensure_topics
    from freshrec.distributed.runtime import DistributedRuntime

    ensure_topics(settings.kafka)
    engine, shared = open_engine(settings)
    return create_app(engine, runtime=DistributedRuntime(engine, shared, Publisher(settings.kafka)))


def train(settings: Settings, progress: Progress | None = None) -> CFModel | None:
    """Train the CF model on the shared state and publish it to every replica."""
    engine, shared = open_engine(settings)
    data = engine.cf.collect(engine.store, engine.total_applied()[0])
    model = engine.cf.fit(data, progress)
    if model is not None:
        shared.put_model(model)
    return model
