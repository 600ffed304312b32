"""The engine: events -> views -> strategies. The one object the API, replay and evaluation share.

>>> from freshrec.config import load_settings
>>> engine = Engine.in_memory(load_settings(clock="event"))
>>> _ = engine.upsert_items([{"item_id": "a", "category": "books", "price": 12.0}])
>>> _ = engine.ingest([{"user_id": "u1", "item_id": "a", "type": "view", "timestamp": 1_700_000_000}])
>>> [r.item_id for r in engine.recommend("u1", strategy="personalized", k=5)]
['a']
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from freshrec.catalog import Catalog, Item, ItemIn, validate_items
from freshrec.cf import CFService
from freshrec.config import Settings
from freshrec.content import ContentIndex
from freshrec.errors import FieldProblem, InvalidInput, NotFound
from freshrec.events import Event, validate_events
from freshrec.experiments.registry import OPS as EXPERIMENT_OPS
from freshrec.experiments.registry import Experiments
from freshrec.ranker.service import RankerService
from freshrec.ranking.base import Features, ItemStrategy, Recommendation, Request, Strategy
from freshrec.ranking.cf import CollaborativeFiltering
from freshrec.ranking.content import SimilarContent
from freshrec.ranking.cross_category import CrossCategory
from freshrec.ranking.features import FeatureSources
from freshrec.ranking.hybrid import Hybrid
from freshrec.ranking.learned import LearnedRanking
from freshrec.ranking.profile import Personalized, Session
from freshrec.ranking.related import AlsoBought as AlsoBoughtStrategy
from freshrec.ranking.related import CoVisit
from freshrec.ranking.trending import Trending, TrendingForYou
from freshrec.state.base import StateStore, open_state
from freshrec.state.memory import MemoryState
from freshrec.tiers import PriceTiers
from freshrec.views.base import Resolved, Row
from freshrec.views.columnar.batch import BatchBuilder
from freshrec.views.columnar.retention import UserRetention
from freshrec.views.registry import USER_NAMESPACES, build_views

T = TypeVar("T")
ENGINE_NS = "engine"  # the clock and counters a distributed deployment shares
ENGINE_KEY = "engine"
USER_STRATEGIES = ("hybrid", "personalized", "session", "trending_for_you", "trending")
SNAPSHOT_VERSION = 7  # 7: retention (free user ids, last activity); older snapshots: the log is replayed


class Journal(Protocol):
    """Where writes become durable before they are applied (the data directory's log)."""

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Write records durably; return only once they are durable."""


class SharedCatalog(Protocol):
    """What the processes of one distributed deployment share besides view state: the catalog.

    Catalog changes (upserts, deletes, items observed in events) are written by whichever process applies
    them, inside the state batch that applies their effects on the views; every process mirrors the
    changes into its own :class:`Catalog` and vector index. Implementation:
    :mod:`freshrec.distributed.catalog`.
    """

    def publish(self, change: Mapping[str, Any]) -> None:
        """Record ``change`` as part of the state batch being written."""

    def changes(self) -> list[dict[str, Any]]:
        """Every change since the previous call (all of them on the first), in order."""
        ...


class SnapshotVersionError(ValueError):
    """A snapshot written by another layout of the state: rebuild from the log instead."""


@dataclass(slots=True)
class IngestResult:
    accepted: int
    applied: int
    event_ids: list[str]


def events_record(events: Sequence[Event], at: float | None = None) -> dict[str, Any]:
    """The journal record of a batch of events; ``at``: the wall-clock time they were applied at."""
    record: dict[str, Any] = {"op": "events", "events": [e.to_record() for e in events]}
    if at is not None:
        record["at"] = at
    return record


def items_record(items: Sequence[ItemIn], stamp: float) -> dict[str, Any]:
    return {"op": "items", "at": stamp, "items": [i.model_dump(exclude_none=True) for i in items]}


class Engine:
    """Feature views updated per event, strategies answering from them."""

    def __init__(
        self, settings: Settings, store: StateStore | None = None, shared: SharedCatalog | None = None
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else open_state(settings.state)
        self.shared = shared
        self.tiers = PriceTiers(settings.price_tiers)
        self.catalog = Catalog(self.tiers)
        self.content = ContentIndex(settings.embeddings, self.catalog)
        self.weights = dict(settings.events.weights)
        self.journal: Journal | None = None
        self.event_clock = 0.0
        self.applied_events = 0
        self.duplicate_events = 0
        self._last_forget = 0.0
        self._replaying = False  # applying journal records: forgetting comes from the journal, not the limits
        self.experiments = Experiments()
        #: position of each external change source (a replication slot's LSN), journaled with its changes
        self.sources: dict[str, str] = {}
        #: called with every applied batch of events (a feature sink learns which keys changed)
        self.listeners: list[Callable[[Sequence[Event]], None]] = []

        columnar = isinstance(self.store, MemoryState)
        built = build_views(settings, self.content.vector_of, columnar, self.tiers.names)
        self.vocabulary = built.vocabulary
        self.views: dict[str, Any] = built.by_name
        self._view_list = built.per_event
        self._batched = built.batched
        self._item_aware = built.item_aware
        if columnar:
            built.get("content_trending").catalog = self.catalog.items
            built.get("item_popularity").catalog = self.catalog.items
            built.get("item_popularity").tier_of = self.tiers.of
        #: bounded state (embedded only): users' last activity, forgetting users and deleted items
        self.retention = (
            UserRetention(settings.retention, self.vocabulary, self._batched) if columnar else None
        )
        ttl = settings.retention.user_ttl_days
        if not columnar and ttl is not None and hasattr(self.store, "expire_keys_after"):
            self.store.expire_keys_after(USER_NAMESPACES, ttl * 86_400.0)  # Redis: key expiry
        interest = built.get("user_interest")
        user_items = built.get("user_items")
        self.features = Features(
            settings=settings,
            store=self.store,
            catalog=self.catalog,
            category_profile=built.get("user_category_profile"),
            category_affinity=built.get("user_category_affinity"),
            recent_activity=built.get("user_recent_activity"),
            brand_profile=built.get("user_brand_profile"),
            price_sensitivity=built.get("user_price_sensitivity"),
            trending=built.get("content_trending"),
            popularity=built.get("item_popularity"),
            history=built.get("user_history"),
            co_visits=built.get("co_visits"),
            also_bought=built.get("also_bought"),
            cross_affinity=built.by_name.get("category_cross_affinity"),
            tier_drift=built.by_name.get("user_price_tier_drift"),
        )
        strategies: dict[str, Strategy] = {
            "personalized": Personalized(self.features),
            "session": Session(self.features),
            "trending": Trending(self.features),
            "trending_for_you": TrendingForYou(self.features),
        }
        if self.features.cross_affinity is not None:
            strategies["cross_category"] = CrossCategory(self.features)
        covisit = CoVisit(self.features, settings.strategies.covisit_last_items)
        strategies["covisit"] = covisit
        self.similar: SimilarContent | None = None
        if self.content.vectors is not None:
            self.similar = SimilarContent(self.features, self.content.vectors, interest)
            strategies["similar_content"] = self.similar
        item_strategies: dict[str, ItemStrategy] = {
            "covisit": covisit,
            "also_bought": AlsoBoughtStrategy(self.features),
        }
        if self.similar is not None:
            item_strategies["similar_content"] = self.similar
        self.cf = CFService(settings.cf, user_items)
        self.user_items = user_items
        if settings.cf.enabled:
            user_fallbacks: dict[str, Strategy] = {
                n: strategies[n] for n in ("similar_content", "trending") if n in strategies
            }
            item_fallbacks = {n: item_strategies[n] for n in ("similar_content",) if n in item_strategies}
            cf = CollaborativeFiltering(self.features, self.cf, user_items, user_fallbacks, item_fallbacks)
            strategies["cf"] = cf
            item_strategies["cf"] = cf
        self.ranker = RankerService(settings.ranker)
        vectors = self.content.vectors
        self.feature_sources = FeatureSources(self.features, self.cf, user_items, vectors, interest)
        learned = LearnedRanking(self.ranker, self.feature_sources, item_strategies)
        strategies["hybrid"] = Hybrid(
            self.features, dict(strategies), learned if settings.ranker.enabled else None
        )
        self.strategies = strategies
        self.item_strategies = item_strategies

    @classmethod
    def in_memory(cls, settings: Settings) -> Engine:
        return cls(settings)

    # -- the clock ----------------------------------------------------------------------------------
    def now(self) -> float:
        """Wall-clock time (``clock = "wall"``) or the largest event time applied (``"event"``)."""
        if self.settings.clock == "wall":
            return time.time()
        if self.shared is not None:
            fields = self.store.fields(ENGINE_NS, ENGINE_KEY, "")
            if fields is not None:
                self.event_clock = max(self.event_clock, fields.get("event_clock", 0.0))
        return self.event_clock

    # -- writes -------------------------------------------------------------------------------------
    def ingest(self, payload: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> IngestResult:
        """Validate and apply events given as dicts (SPEC §1); all-or-nothing."""
        data: Any = dict(payload) if isinstance(payload, Mapping) else list(payload)
        return self.ingest_events(validate_events(data, self.settings.events))

    def ingest_events(self, events: Sequence[Event]) -> IngestResult:
        """Apply validated events: new ones are journaled (when durable), then applied; repeats are no-ops."""
        fresh = self.new_events(events)
        if fresh and self.journal is not None:
            self.journal.append([events_record(fresh)])
        self.apply_events(fresh)
        return IngestResult(len(events), len(fresh), [e.event_id for e in events])

    def forget_users(self, user_ids: Sequence[str], reason: str = "request") -> int:
        """Forget every entry of ``user_ids`` (journaled first, so recovery forgets the same users at the
        same point of the log); returns how many were held. Embedded state only."""
        if self.retention is None:
            raise NotImplementedError("forgetting users needs the embedded state (memory://)")
        if self.journal is not None and user_ids:
            self.journal.append([{"op": "forget_users", "reason": reason, "user_ids": list(user_ids)}])
        return self.retention.forget(user_ids, reason)

    def new_events(self, events: Sequence[Event]) -> list[Event]:
        """The events not applied before (by ``event_id``), first occurrence of each."""
        fresh: list[Event] = []
        batch_ids: set[str] = set()
        seen = self.store.seen_among([e.event_id for e in events])
        for event in events:
            if event.event_id in batch_ids or event.event_id in seen:
                continue
            batch_ids.add(event.event_id)
            fresh.append(event)
        self.duplicate_events += len(events) - len(fresh)
        return fresh

    def apply_events(self, events: Sequence[Event], at: float | None = None) -> None:
        """Apply already-journaled, de-duplicated events to every view.

        ``at`` is the wall-clock time of the application (default: now), journaled with the events, so
        that a process replaying the journal (recovery, a serving process following the writer) applies
        them at the same time and computes the same state.
        """
        if not events:
            return
        if self.shared is not None:
            self.sync_catalog()
        store = self.store
        catalog = self.catalog
        late_before = self.features.co_visits.late_events
        items = catalog.items
        tiers_of = self.tiers.of
        weights = self.weights
        views = self._view_list
        event_clock = self.settings.clock == "event"
        # event ids are remembered from when they were applied, whatever their timestamps
        arrival = time.time() if at is None else at
        now = arrival if at is not None and not event_clock else self.now()
        store.begin()
        per_event: Sequence[Event] = events
        if not views:
            now = self._apply_batched(events, now, arrival)
            per_event = ()
        builder = BatchBuilder() if self._batched and per_event else None
        for event in per_event:
            item = items.get(event.item_id)
            if item is None or item.observed:
                change = catalog.observe(
                    event.item_id, event.category, event.brand, event.price, (event.ts, event.event_id)
                )
                if change is not None:
                    self._item_changed(*change)
                    self._publish_put(change[1], None)
                item = items[event.item_id]
            price = event.price if event.price is not None else item.price
            item_tier = tiers_of(item.price)
            attrs = Resolved(
                category=event.category if event.category is not None else item.category,
                brand=event.brand if event.brand is not None else item.brand,
                price=price,
                tier=tiers_of(price) if event.price is not None else item_tier,
                weight=weights[event.type],
                item_category=item.category,
                item_tier=item_tier,
                item_brand=item.brand,
            )
            if event_clock and event.ts > now:
                now = self.event_clock = event.ts
            for view in views:
                view.apply(event, attrs, store, now)
            store.mark_seen(event.event_id, arrival)
            if builder is not None:
                builder.add(event, attrs, now)
        if builder is not None:
            batch = builder.build(self.vocabulary)
            for batched in self._batched:
                batched.apply_batch(batch)
        if self.shared is not None:
            late = self.features.co_visits.late_events - late_before
            store.add(
                ENGINE_NS, ENGINE_KEY, "", {"applied_events": len(events), "co_visit_late_events": late}
            )
            if event_clock:
                store.put_max(ENGINE_NS, ENGINE_KEY, "", "event_clock", now)
        store.commit()
        self.experiments.on_events(events, items)
        self.applied_events += len(events)
        for listener in self.listeners:
            listener(events)
        self.expire(now)

    def _apply_batched(self, events: Sequence[Event], now: float, arrival: float) -> float:
        """Apply events to views that are all columnar; returns the engine clock after them."""
        catalog = self.catalog
        items, observe = catalog.items, catalog.observe
        builder = BatchBuilder()
        add = builder.add_event
        weights, tier_of = self.weights, self.tiers.of
        for event in events:
            item = items.get(event.item_id)
            if item is None or item.observed:
                change = observe(
                    event.item_id, event.category, event.brand, event.price, (event.ts, event.event_id)
                )
                if change is not None:
                    self._item_changed(*change)
                    self._publish_put(change[1], None)
                item = items[event.item_id]
            add(event, item, weights[event.type], tier_of)
        batch = builder.build(self.vocabulary, now, self.settings.clock == "event")
        for batched in self._batched:
            batched.apply_batch(batch)
        if self.retention is not None:
            self.retention.apply_batch(batch)
        assert isinstance(self.store, MemoryState)
        self.store.mark_seen_many(batch.event_ids, arrival)
        if self.settings.clock == "event" and batch.n:
            now = self.event_clock = max(now, float(batch.now[-1]))
        return now

    def expire(self, now: float | None = None) -> None:
        """Drop windows out of retention and forget event ids applied longer ago than the dedup retention.

        Event ids age by wall-clock time since they were applied, not by their timestamps: re-sending a
        file of year-old events a week after the first time is still a no-op. With ``retention`` limits,
        the users they pick are forgotten here too (journaled, so recovery forgets the same ones).
        """
        at = self.now() if now is None else now
        for view in self._view_list:
            view.expire(self.store, at)
        for batched in self._batched:
            batched.expire(self.store, at)
        limits = self.settings.events
        wall = time.time()
        if wall - self._last_forget >= 3600.0:
            self.store.forget_seen_before(wall - limits.dedup_retention_seconds)
            self._last_forget = wall
        if self.store.seen_count() > limits.dedup_max_ids * 1.1:
            self.store.forget_seen_beyond(limits.dedup_max_ids)
        if self.retention is not None and self.retention.enabled and not self._replaying:
            for reason, user_ids in self.retention.victims(at):
                self.forget_users(user_ids, reason)

    def upsert_items(self, payload: Iterable[Mapping[str, Any] | ItemIn]) -> list[Item]:
        """Validate (all-or-nothing), journal and apply item upserts."""
        raw = list(payload)
        incoming = (
            [i for i in raw if isinstance(i, ItemIn)]
            if all(isinstance(i, ItemIn) for i in raw)
            else validate_items([i.model_dump() if isinstance(i, ItemIn) else i for i in raw])
        )
        prepared = self.content.prepare(incoming)
        stamp = time.time()
        if self.journal is not None:
            self.journal.append([items_record(prepared, stamp)])
        return self.apply_items(prepared, stamp)

    def prepare_items(self, incoming: Sequence[ItemIn]) -> list[ItemIn]:
        """Items with their embeddings computed (slow: the API runs it in a worker thread)."""
        return self.content.prepare(incoming)

    def apply_items(
        self, incoming: Sequence[ItemIn], stamp: float, record_id: str | None = None
    ) -> list[Item]:
        """Upsert items (their effects on the views in one state batch).

        ``record_id`` names the write (a Kafka record): a write already applied is skipped, so re-delivery
        after a crash changes nothing.
        """
        if self.shared is not None:
            self.sync_catalog()
        if record_id is not None and self.store.seen(record_id):
            return []
        out = []
        self.store.begin()
        for one in incoming:
            old, new = self.catalog.upsert(one, stamp)
            self._item_changed(old, new)
            self._publish_put(new, one.embedding if one.embedding is not None else False)
            out.append(new)
        if record_id is not None:
            self.store.mark_seen(record_id, time.time())
        self.store.commit()
        self.content.apply(incoming)
        return out

    def delete_item(self, item_id: str) -> bool:
        if item_id not in self.catalog.items:
            return False
        if self.journal is not None:
            self.journal.append([{"op": "delete_item", "item_id": item_id}])
        return self.apply_delete(item_id)

    def apply_delete(self, item_id: str, record_id: str | None = None) -> bool:
        if self.shared is not None:
            self.sync_catalog()
        if record_id is not None and self.store.seen(record_id):
            return False
        self.store.begin()
        old = self.catalog.delete(item_id)
        if old is not None:
            self._item_changed(old, None)
            if self.shared is not None:
                self.shared.publish({"op": "delete", "item_id": item_id})
        if record_id is not None:
            self.store.mark_seen(record_id, time.time())
        self.store.commit()
        if old is not None:
            self.content.remove(item_id)
            if self.retention is not None:
                self.retention.forget_items([item_id])
        return old is not None

    def _publish_put(self, item: Item, embedding: list[float] | bool | None) -> None:
        """Share a catalog change: ``embedding`` a vector, False (none: leaves the index), None (kept)."""
        if self.shared is not None:
            self.shared.publish({"op": "put", "item": dataclasses.asdict(item), "embedding": embedding})

    def sync_catalog(self) -> int:
        """Mirror the catalog changes other processes made (distributed mode); returns how many."""
        if self.shared is None:
            return 0
        changes = self.shared.changes()
        for change in changes:
            if change["op"] == "delete":
                if self.catalog.delete(change["item_id"]) is not None:
                    self.content.remove(change["item_id"])
                continue
            data = dict(change["item"])
            if data.get("observed_at") is not None:
                data["observed_at"] = {k: (float(v[0]), str(v[1])) for k, v in data["observed_at"].items()}
            item = Item(**data)
            self.catalog.replace(item)
            embedding = change.get("embedding")
            if embedding is False:
                self.content.remove(item.item_id)
            elif isinstance(embedding, list):
                self.content.apply([ItemIn(item_id=item.item_id, embedding=embedding)])
        return len(changes)

    def apply_record(self, record: Mapping[str, Any]) -> None:
        """Apply one journal record (recovery)."""
        self._replaying = True
        try:
            self._apply_record(record)
        finally:
            self._replaying = False

    def _apply_record(self, record: Mapping[str, Any]) -> None:
        op = record["op"]
        if op == "events":
            events = [Event.from_record(r) for r in record["events"]]
            seen = self.store.seen_among([e.event_id for e in events])
            at = record.get("at")
            fresh = [e for e in events if e.event_id not in seen] if seen else events
            self.apply_events(fresh, None if at is None else float(at))
        elif op == "items":
            self.apply_items([ItemIn.model_validate(i) for i in record["items"]], float(record["at"]))
        elif op == "delete_item":
            self.apply_delete(record["item_id"])
        elif op == "forget_users":
            if self.retention is not None:
                self.retention.forget(record["user_ids"], record["reason"])
        elif op in EXPERIMENT_OPS:
            self.experiments.apply_record(record)
        else:
            raise ValueError(f"unknown journal record {op!r}")
        if "source" in record:
            self.sources.update(record["source"])

    def _item_changed(self, old: Item | None, new: Item | None) -> None:
        for view in self._item_aware:
            view.on_item_change(old, new, self.store, self.tiers)

    # -- reads --------------------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str | None,
        strategy: str | None = None,
        k: int = 20,
        category: str | None = None,
        exclude_purchased: bool = True,
        explain: bool = False,
        exclude: Iterable[str] = (),
    ) -> list[Recommendation]:
        """The user's top ``k`` by ``strategy``; items in ``exclude`` are never returned."""
        name = strategy or self.settings.strategies.default
        chosen = _pick(self.strategies, name, "strategy")
        request = self._request(user_id, k, category, exclude_purchased, explain)
        if exclude:
            request.exclude = exclude if isinstance(exclude, (set, frozenset)) else frozenset(exclude)
        return chosen.recommend(request)

    def recommend_for_item(
        self,
        item_id: str,
        strategy: str = "covisit",
        k: int = 10,
        user_id: str | None = None,
        category: str | None = None,
        explain: bool = False,
    ) -> list[Recommendation]:
        """Items related to ``item_id`` (SPEC §5 item recommendations); filtered for ``user_id`` if given."""
        chosen = _pick(self.item_strategies, strategy, "item strategy")
        return chosen.for_item(item_id, self._request(user_id, k, category, True, explain))

    def _request(
        self, user_id: str | None, k: int, category: str | None, exclude_purchased: bool, explain: bool
    ) -> Request:
        """A validated request with the engine clock and the user's purchases."""
        if not 1 <= k <= self.settings.strategies.max_k:
            message = f"k must be between 1 and {self.settings.strategies.max_k}"
            raise InvalidInput(message, [FieldProblem(0, "k", message)])
        purchased = self.purchased_items(user_id) if user_id is not None else frozenset()
        return Request(
            user_id=user_id,
            k=k,
            now=self.now(),
            category=category,
            exclude_purchased=exclude_purchased,
            explain=explain,
            purchased=purchased,
        )

    def co_visits_of(self, item_id: str, limit: int = 10) -> list[tuple[str, int]]:
        """``co_visits`` after-items of ``item_id``, most frequent first (ties per SPEC §4), unfiltered."""
        from freshrec.ranking.base import by_scores

        out: list[tuple[str, int]] = []
        for neg_score, _, after in by_scores(
            self.features, self.features.co_visits.ranked(self.store, item_id)
        ):
            out.append((after, int(-neg_score)))
            if len(out) >= limit:
                break
        return out

    def similar_content_for_user(self, user_id: str, limit: int = 10) -> list[tuple[str, float]]:
        """Items closest to the user's interest centroid, unfiltered (the DataSQRL ``SimilarContent``)."""
        if self.similar is None:
            return []
        vector = self.similar.user_vector(user_id)
        if vector is None or self.content.vectors is None:
            return []
        return self.content.vectors.search(vector, limit)

    def purchased_items(self, user_id: str) -> frozenset[str] | set[str]:
        return self.features.history.purchased(self.store, user_id)

    def view_rows(self, name: str, key: str | None = None) -> list[Row]:
        view = self.views.get(name)
        if view is None:
            raise NotFound(f"view {name!r}; available: {', '.join(sorted(self.views))}")
        rows: list[Row] = view.rows(self.store, self.now(), key)
        return rows

    def profile(self, user_id: str, limit: int = 20) -> dict[str, Any]:
        """The user's profile (SPEC §5)."""
        now = self.now()
        store = self.store
        categories = sorted(
            self.views["user_category_profile"].rows(store, now, user_id),
            key=lambda r: (-r["affinity_score"], r["category"]),
        )
        brands = sorted(
            self.views["user_brand_profile"].rows(store, now, user_id),
            key=lambda r: (-r["brand_affinity"], r["brand"]),
        )
        tiers = sorted(
            self.views["user_price_sensitivity"].rows(store, now, user_id), key=lambda r: r["price_tier"]
        )
        converting = [t for t in tiers if t["conversion_rate"] is not None]
        preferred = max(converting, key=lambda r: (r["conversion_rate"], r["views"]), default=None)
        recent = self.features.recent_activity.recent_scores(store, user_id, now)
        windows = sorted(
            self.views["user_category_affinity"].rows(store, now, user_id),
            key=lambda r: (-r["window_start"], -r["affinity_score"], r["category"]),
        )
        history = self.features.history
        drift = self.views.get("user_price_tier_drift")
        return {
            "user_id": user_id,
            "known": history.has_history(store, user_id),
            "now": now,
            "top_categories": [
                {
                    k: r[k]
                    for k in (
                        "category",
                        "affinity_score",
                        "decayed_affinity",
                        "unique_items_interacted",
                        "last_engaged_at",
                    )
                }
                for r in categories[:limit]
            ],
            "top_brands": [{k: v for k, v in r.items() if k != "user_id"} for r in brands[:limit]],
            "price_tiers": [{k: v for k, v in r.items() if k != "user_id"} for r in tiers],
            "preferred_price_tier": None if preferred is None else preferred["price_tier"],
            # embedded state only (the view is not kept on a networked store)
            "price_tier_drift": None if drift is None else _drift_summary(drift.rows(store, now, user_id)),
            "recent_categories": [
                {"category": c, "recent_score": s}
                for c, s in sorted(recent.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            ],
            "category_windows": [{k: v for k, v in r.items() if k != "user_id"} for r in windows],
            "recent_items": [
                {"item_id": i, "type": t, "timestamp": ts}
                for i, t, ts in history.recent_items(store, user_id)[:limit]
            ],
        }

    def trending(self, k: int = 20, category: str | None = None) -> dict[str, Any]:
        """Trending items with their ``content_trending`` fields for the current window."""
        now = self.now()
        view = self.features.trending
        start = view.current_window(now)
        recs = self.recommend(None, "trending", k=k, category=category, explain=True)
        items = []
        for rec in recs:
            row = view.window_row(self.store, rec.item_id, start)
            entry: dict[str, Any] = {"item_id": rec.item_id, "score": rec.score}
            if row is not None:
                entry.update(
                    {k: v for k, v in row.items() if k not in ("item_id", "window_start", "window_end")}
                )
            items.append(entry)
        empty = view.size_of(self.store, start) == 0
        return {
            "window_start": start,
            "window_end": start + view.size,
            "now": now,
            "fallback": "item_popularity" if empty else None,
            "items": items,
        }

    def total_applied(self) -> tuple[int, int]:
        """Events applied and co-visit late events, by this process or (distributed) by every worker."""
        if self.shared is None:
            return self.applied_events, self.features.co_visits.late_events
        fields = self.store.fields(ENGINE_NS, ENGINE_KEY, "") or {}
        return int(fields.get("applied_events", 0.0)), int(fields.get("co_visit_late_events", 0.0))

    def stats(self) -> dict[str, Any]:
        applied, late = self.total_applied()
        return {
            "items": len(self.catalog),
            "applied_events": applied,
            "duplicate_events": self.duplicate_events,
            "co_visit_late_events": late,
            "cf_model_version": None if self.cf.model is None else self.cf.model.info.version,
            "cf_model_events": None if self.cf.model is None else self.cf.model.info.events,
            "clock": self.settings.clock,
            "now": self.now(),
            **self.store.stats(),
            **self._columnar_stats(),
        }

    def _columnar_stats(self) -> dict[str, Any]:
        return {} if self.retention is None else self.retention.stats()

    def columnar_views(self) -> list[Any]:
        """The views kept in numpy columns (the embedded state)."""
        return list(self._batched)

    # -- snapshots ----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole engine state (view columns, catalog, clock) as a tree of arrays and plain values.

        The arrays are the views' own (no copy): write it out (:mod:`freshrec.storage.snapshot`) before
        the next change is applied.
        """
        vectors = self.content.dump()
        return {
            "version": SNAPSHOT_VERSION,
            "state": self.store.dump(),
            "items": self.catalog.items,
            "event_clock": self.event_clock,
            "applied_events": self.applied_events,
            "last_forget": self._last_forget,
            "co_visit_late_events": self.features.co_visits.late_events,
            "vectors": None if vectors is None else np.frombuffer(vectors, dtype=np.uint8),
            "vocabulary": self.vocabulary.arrays(),
            "columnar": {view.name: view.arrays() for view in self._batched},
            "retention": None if self.retention is None else self.retention.arrays(),
            "sources": self.sources,
            "experiments": self.experiments.dump(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the state by a :meth:`snapshot` (of this engine's layout)."""
        version = data.get("version")
        if version != SNAPSHOT_VERSION:
            raise SnapshotVersionError(f"snapshot version {version} is not {SNAPSHOT_VERSION}")
        self.store.load(data["state"])
        self.catalog.load(data["items"].values())
        self.vocabulary.load(data["vocabulary"])
        for view in self._batched:
            view.load(data["columnar"][view.name])
        if self.retention is not None:
            self.retention.load(data["retention"])
        self.event_clock = data["event_clock"]
        self.applied_events = data["applied_events"]
        self._last_forget = data["last_forget"]
        self.features.co_visits.late_events = data.get("co_visit_late_events", 0)
        vectors = data.get("vectors")
        self.content.load(None if vectors is None else vectors.tobytes())
        self.sources = dict(data.get("sources", {}))
        self.experiments.load(data.get("experiments"))


def _drift_summary(rows: list[Row]) -> dict[str, Any]:
    """The profile's ``price_tier_drift``: ``drifting_to`` and the tiers' shares (user_price_tier_drift)."""
    return {
        "drifting_to": rows[0]["drifting_to"] if rows else None,
        "tiers": [{k: v for k, v in r.items() if k not in ("user_id", "drifting_to")} for r in rows],
    }


def _pick(choices: Mapping[str, T], name: str, what: str) -> T:
    """``choices[name]``, or a 422 naming what is available."""
    chosen = choices.get(name)
    if chosen is None:
        message = f"unknown {what} {name!r}; available: {', '.join(sorted(choices))}"
        raise InvalidInput(message, [FieldProblem(0, "strategy", message)])
    return chosen
