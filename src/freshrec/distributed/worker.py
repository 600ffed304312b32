"""``freshrec worker``: one member of a consumer group that applies the Kafka topics to the shared state.

Each poll gives at most ``kafka.batch_size`` records. They are decoded and validated; a record that cannot
be applied (not JSON, not a valid event or catalog change) goes to the dead-letter topic with the reason in
its ``error`` header, and nothing else of the batch is held back by it. The rest is applied through the same
:class:`~freshrec.engine.Engine` the server runs, each run of events (or each catalog change) one state
transaction that also stores, for every partition it read from, the offset up to which the partition is
applied, and that only commits if those offsets are still the ones it read (a fenced transaction, see
:mod:`freshrec.state.redis_fence`). Records below a partition's stored offset are skipped; on assignment the
consumer starts from the stored offsets. So applying a record and marking it applied are one atomic step:
a worker killed or paused at any point, a partition moved while its records are in flight, or the broker
delivering a record twice, loses nothing and counts nothing twice. The group's committed offsets follow
(progress, lag), and a commit the group refuses is harmless.

Exposures (experiments) on the events topic are applied, and credited by the batch's events, in the same
fenced transaction (:mod:`freshrec.experiments.shared`).

If the state store is unreachable, the batch is retried with back-off until it is applied: records are
never skipped and offsets never move past what is stored.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import WatchError

from freshrec.catalog import validate_items
from freshrec.config import Settings
from freshrec.distributed.catalog import CHANGES, StoreCatalog
from freshrec.distributed.fencing import mirror_entries, partition_of, restore_mirror, unapplied
from freshrec.distributed.kafka import client_config, ensure_topics, producer_config
from freshrec.engine import Engine
from freshrec.errors import InvalidInput
from freshrec.events import Event, validate_events
from freshrec.experiments.shared import SharedExperiments, position, take_exposure
from freshrec.state.redis import RedisState

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("freshrec worker needs confluent-kafka: pip install 'freshrec[distributed]'") from exc

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerStats:
    records: int = 0
    events_applied: int = 0
    catalog_changes: int = 0
    dead_letters: int = 0
    batches: int = 0
    retries: int = 0
    #: fenced transactions started again: another worker applied first, or the catalog moved
    conflicts: int = 0
    skipped: int = 0  # records already applied (below their partition's stored offset)
    exposures: int = 0  # experiment exposures applied
    assigned: list[str] = field(default_factory=list)


def consumer_config(settings: Settings) -> dict[str, Any]:
    k = settings.kafka
    return {
        **client_config(k),
        "group.id": k.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": k.session_timeout_ms,
        "heartbeat.interval.ms": max(250, k.session_timeout_ms // 6),
        "max.poll.interval.ms": max(300_000, k.session_timeout_ms),
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 20,  # produce -> applied latency (the default 500 ms adds ~80 ms median)
        "topic.metadata.refresh.interval.ms": 1000,
    }


def record_id(message: Message) -> str:
    return f"kafka:{message.topic()}:{message.partition()}:{message.offset()}"


class Worker:
    """Consumes the events and items topics of ``settings.kafka`` into ``engine``'s state."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.kafka = settings.kafka
        self.stats = WorkerStats()
        self.stop_requested = threading.Event()
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        if not isinstance(engine.store, RedisState):
            raise ValueError("freshrec worker needs the shared state of distributed mode (redis://...)")
        self.store: RedisState = engine.store
        engine.experiments = SharedExperiments(engine.store)
        self._progress: dict[str, int] = {}  # partition -> offset applied up to, not yet committed
        self._sought: dict[str, int] = {}  # partition -> stored offset it was sought back to (a gap)
        self._rereading: set[str] = set()  # partitions sought back in this batch: the rest of it is dropped

    # -- the loop -----------------------------------------------------------------------------------
    def run(
        self, idle_exit: float | None = None, on_batch: Callable[[WorkerStats], None] | None = None
    ) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT in the main thread); ``idle_exit`` ends the loop
        after that many seconds without records (for one-shot catch-up runs)."""
        ensure_topics(self.kafka)
        consumer = self._consumer = Consumer(consumer_config(self.settings), logger=log)
        self._producer = Producer(producer_config(self.kafka))
        consumer.subscribe(
            [self.kafka.events_topic, self.kafka.items_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )
        idle_since = time.monotonic()
        try:
            while not self.stop_requested.is_set():
                messages = self._next_batch(consumer)
                usable = [m for m in messages if self._usable(m)]
                if not usable:
                    if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                        break
                    continue
                idle_since = time.monotonic()
                self._apply_with_retry(usable)
                self.commit_offsets(consumer)
                self.stats.batches += 1
                if on_batch is not None:
                    on_batch(self.stats)
        finally:
            consumer.close()
            self._producer.flush(10.0)

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        """Whatever is there, as soon as the first record is: wait up to 0.5 s for one record, then take
        the rest of what has arrived without waiting (``consume`` alone holds records until the batch is
        full or the timeout has passed, which would add up to 0.5 s to every event at low traffic)."""
        first = consumer.poll(0.5)
        if first is None:
            return []
        more = (
            consumer.consume(num_messages=self.kafka.batch_size - 1, timeout=0)
            if self.kafka.batch_size > 1
            else []
        )
        return [first, *more]

    def stop(self) -> None:
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def commit_offsets(self, consumer: Consumer) -> None:
        """Tell the group how far the applied offsets went. What is applied is decided by the offsets stored
        with the state, so a commit refused because the partition moved meanwhile is only logged."""
        offsets = [
            TopicPartition(name.rpartition(":")[0], int(name.rpartition(":")[2]), offset)
            for name, offset in self._progress.items()
        ]
        self._progress.clear()
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.info("offsets not committed (%s); the applied offsets in the state stand", exc)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.assigned = sorted(f"{p.topic}[{p.partition}]" for p in partitions)
        log.info("assigned %s", ", ".join(self.stats.assigned) or "nothing")
        try:
            stored = self.store.applied_offsets([f"{p.topic}:{p.partition}" for p in partitions])
        except Exception as exc:  # the state is unreachable: the committed offsets are never ahead of it
            log.warning("cannot read the applied offsets (%s); starting from the committed ones", exc)
            return
        for p in partitions:
            offset = stored[f"{p.topic}:{p.partition}"]
            if offset is not None:
                p.offset = offset
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # records still held for these partitions are fenced by their applied offsets: if the new owner
        # applies them first, this worker's transaction does not commit and they are skipped
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing")

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise RuntimeError(f"Kafka consumer failed: {error.str()}")
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("Kafka: %s", error.str())
        return False

    # -- applying a batch ---------------------------------------------------------------------------
    def _apply_with_retry(self, messages: Sequence[Message]) -> None:
        delay = 0.1
        while True:
            try:
                self.apply(messages)
                return
            except (InvalidInput, ValueError, KeyError, TypeError):
                raise
            except Exception as exc:  # the state store is unreachable: keep the batch and try again
                if self.stop_requested.is_set():
                    raise
                self.stats.retries += 1
                log.warning("applying %d records failed (%s); retrying in %.1fs", len(messages), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def apply(self, messages: Sequence[Message]) -> None:
        """Apply consecutive runs of events and of catalog changes, in the order they were consumed."""
        self._rereading.clear()
        run: list[Message] = []
        for message in messages:
            if run and run[-1].topic() != message.topic():
                self._apply_run(run)
                run = []
            run.append(message)
        if run:
            self._apply_run(run)
        self.stats.records += len(messages)

    def _apply_run(self, run: Sequence[Message]) -> None:
        if run[0].topic() == self.kafka.items_topic:
            for message in run:
                self._fenced([message], catalog=True)
        else:
            self._fenced(run, catalog=False)

    def _fenced(self, run: Sequence[Message], catalog: bool) -> None:
        """Apply ``run`` in one fenced transaction, started again until it commits or is all applied.

        Catalog changes read what they rewrite (an item's popularity, its rankings) while other partitions'
        workers add to it, so their transaction also requires every key they read to be unchanged; event
        runs require the catalog not to have changed since they mirrored it.
        """
        run = [m for m in run if partition_of(m) not in self._rereading]
        if not run:
            return
        names = sorted({partition_of(m) for m in run})
        attempt = 0
        while True:
            before = mirror_entries(self.engine.catalog, run, catalog)
            position = self._catalog_position()
            try:
                with self.store.fenced(names, watch_logs=(CHANGES,), watch_reads=catalog) as fence:
                    split = unapplied(run, fence.stored, self._sought)
                    fence.advance.update(split.advance)
                    if split.todo and catalog:
                        self._apply_catalog(split.todo[0])
                    elif split.todo:
                        self._apply_events(split.todo)
            except WatchError:
                attempt += 1
                self.stats.conflicts += 1
                # the attempt may have mirrored committed changes of these very items (they are what moved
                # the watched log): put the entries back *and* read those changes again, or the next
                # attempt would take a real item for one it never heard of and publish a stub over it
                restore_mirror(self.engine.catalog, before)
                self._rewind_catalog(position)
                log.info("a concurrent write touched what %d records read; applying them again", len(run))
                time.sleep(min(0.5, 0.005 * attempt))
                continue
            except Exception:  # the store failed (the batch is retried): mirror the shared catalog anew
                restore_mirror(self.engine.catalog, before)
                self._rewind_catalog(None)
                raise
            self.stats.skipped += split.skipped
            for name, (first, stored) in split.gaps.items():
                # records between the stored offset and these were never applied: read them again
                log.warning(
                    "%s: records from offset %d on were not applied; reading them again", name, stored
                )
                self._sought[name] = stored
                self._rereading.add(name)
                self._seek(first, stored)
            self._progress.update(fence.advance)
            return

    def _catalog_position(self) -> str | None:
        shared = self.engine.shared
        return shared.position if isinstance(shared, StoreCatalog) else None

    def _rewind_catalog(self, position: str | None) -> None:
        """Mirror the shared catalog's changes again from ``position`` (None: from the whole catalog)."""
        if isinstance(self.engine.shared, StoreCatalog):
            self.engine.shared.position = position

    def _seek(self, message: Message, offset: int) -> None:
        if self._consumer is None:
            return
        try:
            self._consumer.seek(TopicPartition(message.topic() or "", message.partition() or 0, offset))
        except KafkaException as exc:  # no longer assigned: the new owner starts from the stored offset
            log.info("not re-reading %s: %s", partition_of(message), exc)

    def _flush_letters(self, before: int) -> None:
        """Dead letters are acknowledged before the records they replace are marked applied."""
        if self.stats.dead_letters > before and self._producer is not None and self._producer.flush(10.0) > 0:
            raise RuntimeError("the dead-letter topic did not acknowledge; the batch is retried")

    def _apply_events(self, run: Sequence[Message]) -> None:
        letters = self.stats.dead_letters
        payloads: list[tuple[Message, Any]] = []
        exposures: list[tuple[int, Mapping[str, Any]]] = []  # (position in the partition, record)
        for message in run:
            try:
                payload = orjson.loads(message.value() or b"")
            except orjson.JSONDecodeError as exc:
                self.dead_letter(message, f"not JSON: {exc}")
                continue
            wrong = take_exposure(payload, position(message.offset()), exposures)
            if wrong is not None:  # an exposure: taken, or dead-lettered when malformed
                if wrong:
                    self.dead_letter(message, wrong)
                continue
            if isinstance(payload, dict) and "event_id" not in payload:
                payload["event_id"] = record_id(message)  # the same id on every re-delivery
            payloads.append((message, payload))
        events: list[Event] = []
        while payloads:
            try:
                events = validate_events([p for _, p in payloads], self.settings.events)
                break
            except InvalidInput as exc:
                bad: dict[int, list[str]] = {}
                for problem in exc.details:
                    bad.setdefault(problem.index, []).append(f"{problem.field}: {problem.message}")
                if not bad:  # a problem with the batch as a whole: judge each record alone
                    bad = self._judge_each(payloads)
                for index, reasons in sorted(bad.items()):
                    self.dead_letter(payloads[index][0], "; ".join(reasons))
                payloads = [p for n, p in enumerate(payloads) if n not in bad]
        self._flush_letters(letters)
        fresh = self.engine.new_events(events)
        experiments = self.engine.experiments
        if isinstance(experiments, SharedExperiments) and (exposures or experiments.any_declared()):
            at = {p["event_id"]: position(m.offset()) for m, p in reversed(payloads) if isinstance(p, dict)}
            last = max(position(m.offset()) for m in run)
            experiments.apply_with_events(self.engine, exposures, fresh, at, last)
            self.stats.exposures += len(exposures)
        else:
            self.engine.apply_events(fresh)
        self.stats.events_applied += len(fresh)

    def _judge_each(self, payloads: Sequence[tuple[Message, Any]]) -> dict[int, list[str]]:
        bad: dict[int, list[str]] = {}
        for n, (_, payload) in enumerate(payloads):
            try:
                validate_events([payload], self.settings.events)
            except InvalidInput as exc:
                bad[n] = [exc.error]
        return bad

    def _apply_catalog(self, message: Message) -> None:
        try:
            record = orjson.loads(message.value() or b"")
            op = record.get("op") if isinstance(record, dict) else None
            if op == "items":
                items = self.engine.prepare_items(validate_items(record.get("items")))
                stamp = float(record.get("at", time.time()))
                self.engine.apply_items(items, stamp, record_id=record_id(message))
            elif op == "delete_item" and isinstance(record.get("item_id"), str):
                self.engine.apply_delete(record["item_id"], record_id=record_id(message))
            else:
                raise InvalidInput("expected {'op': 'items', 'items': [...]} or {'op': 'delete_item', ...}")
        except orjson.JSONDecodeError as exc:
            self.dead_letter(message, f"not JSON: {exc}")
            self._flush_letters(self.stats.dead_letters - 1)
            return
        except InvalidInput as exc:
            details = "; ".join(f"#{p.index} {p.field}: {p.message}" for p in exc.details)
            self.dead_letter(message, f"{exc.error}{': ' + details if details else ''}")
            self._flush_letters(self.stats.dead_letters - 1)
            return
        self.stats.catalog_changes += 1

    def dead_letter(self, message: Message, reason: str) -> None:
        """Send a record that cannot be applied to the dead-letter topic, with why and where it came from."""
        assert self._producer is not None
        headers: list[tuple[str, str | bytes | None]] = [
            ("error", reason.encode()),
            ("source", f"{message.topic()}:{message.partition()}:{message.offset()}".encode()),
        ]
        self._producer.produce(self.kafka.dead_letter_topic, message.value(), message.key(), headers=headers)
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s: %s", record_id(message), reason)
