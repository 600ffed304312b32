"""What an API replica does differently in distributed mode: it publishes writes and reads shared state.

Writes are published to Kafka and answered ``202`` once the broker acknowledged them (workers apply them
a moment later). Reads come from the state store; before each one, the replica mirrors catalog changes
and, every few seconds, loads a newer CF model.

When the state store is unreachable, user recommendations are still answered, degraded, with a header that
says so: the last answer this replica gave for the same request (``last-known``), else the trending items
it last saw (``trending``). Everything recovers by itself once the store answers again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from freshrec.api.app import Runtime
from freshrec.catalog import Item, ItemIn
from freshrec.distributed.catalog import StoreCatalog
from freshrec.distributed.kafka import Publisher
from freshrec.engine import Engine, items_record
from freshrec.events import Event
from freshrec.experiments.shared import SharedExperiments
from freshrec.ranking.base import Recommendation
from freshrec.state.redis import RedisState

log = logging.getLogger(__name__)

#: errors that mean "the state store cannot be reached right now", not "the request is wrong"
UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
LAST_ANSWERS = 10_000


class DistributedRuntime(Runtime):
    applied_on_ack = False
    experiments_supported = True  # declarations and tallies in the store, exposures on the events topic
    unavailable_errors = UNAVAILABLE

    def __init__(self, engine: Engine, shared: StoreCatalog, publisher: Publisher) -> None:
        super().__init__(engine, None)
        if isinstance(engine.store, RedisState):
            engine.experiments = SharedExperiments(engine.store)
        self.shared = shared
        self.publisher = publisher
        self.kafka = engine.settings.kafka
        self.last_answers: OrderedDict[tuple[Any, ...], list[Recommendation]] = OrderedDict()
        self.trending_answer: list[Recommendation] = []
        self.degraded_since: float | None = None
        self.degraded_answers = 0

    # -- writes ---------------------------------------------------------------------------------------
    async def write_events(self, events: Sequence[Event]) -> int:
        await self.publisher.publish(self.kafka.events_topic, [(e.user_id, e.to_record()) for e in events])
        return len(events)

    async def publish_exposure(self, record: dict[str, Any]) -> None:
        """An exposure to the events topic, keyed (so ordered) with its user's events; returns once the
        broker acknowledged it."""
        await self.publisher.publish(self.kafka.events_topic, [(record["user_id"], record)])

    async def write_items(self, items: list[ItemIn], stamp: float) -> list[Item]:
        records = [(i.item_id, items_record([i], stamp)) for i in items]
        await self.publisher.publish(self.kafka.items_topic, records)
        return [
            Item(**i.model_dump(exclude={"embedding"}), created_at=stamp, updated_at=stamp) for i in items
        ]

    async def write_delete(self, item_id: str) -> None:
        record = {"op": "delete_item", "item_id": item_id}
        await self.publisher.publish(self.kafka.items_topic, [(item_id, record)])

    # -- reads ----------------------------------------------------------------------------------------
    def before_read(self) -> None:
        try:
            self.engine.sync_catalog()
        except UNAVAILABLE as exc:
            self._down(exc)

    def recommend(
        self, user_id: str, strategy: str, **options: Any
    ) -> tuple[list[Recommendation], str | None]:
        key = (user_id, strategy, *sorted(options.items()))
        try:  # the catalog mirror was synced by the read dependency (before_read)
            recs = self.engine.recommend(user_id, strategy, **options)
        except UNAVAILABLE as exc:
            self._down(exc)
            self.degraded_answers += 1
            known = self.last_answers.get(key)
            if known is not None:
                return known, "last-known"
            return self.trending_answer[: int(options.get("k", 20))], "trending"
        self._up()
        self.last_answers[key] = recs
        self.last_answers.move_to_end(key)
        if len(self.last_answers) > LAST_ANSWERS:
            self.last_answers.popitem(last=False)
        return recs, None

    def _down(self, exc: BaseException) -> None:
        if self.degraded_since is None:
            self.degraded_since = time.time()
            log.error("state store unreachable (%s): answering degraded until it is back", exc)

    def _up(self) -> None:
        if self.degraded_since is not None:
            log.info("state store reachable again after %.1fs", time.time() - self.degraded_since)
            self.degraded_since = None

    # -- background -----------------------------------------------------------------------------------
    async def housekeeping(self, every: float = 2.0) -> None:
        """Keep the trending fallback and the CF model current (workers expire windows, not replicas)."""
        while True:
            gc.freeze()
            try:
                self.engine.sync_catalog()
                self.trending_answer = self.engine.recommend(None, "trending", k=self._max_k())
                await self._load_model()
                self._up()
            except UNAVAILABLE as exc:
                self._down(exc)
            await asyncio.sleep(every)

    async def cf_schedule(self) -> None:
        """Replicas never train; ``freshrec train`` or a worker publishes models (see :meth:`_load_model`)."""

    async def _load_model(self) -> None:
        cf = self.engine.cf
        if not cf.settings.enabled:
            return
        version = self.shared.model_version()
        current = None if cf.model is None else cf.model.info.version
        if version is not None and version != current:
            model = await asyncio.to_thread(self.shared.get_model)
            if model is not None:
                cf.model = model
                log.info("loaded CF model v%d from the shared store", model.info.version)

    async def retrain(self) -> dict[str, Any]:
        """Train on the shared state and publish the model: every replica loads it within seconds."""
        result = await super().retrain()
        if self.engine.cf.model is not None and result["trained"]:
            await asyncio.to_thread(self.shared.put_model, self.engine.cf.model)
        return result

    def _max_k(self) -> int:
        return min(100, self.engine.settings.strategies.max_k)

    def status(self) -> dict[str, Any]:
        return {
            "mode": "distributed",
            "kafka": self.kafka.bootstrap,
            "events_topic": self.kafka.events_topic,
            "state_reachable": self.degraded_since is None,
            "degraded_since": self.degraded_since,
            "degraded_answers": self.degraded_answers,
        }

    def close(self) -> None:
        self.publisher.close()
