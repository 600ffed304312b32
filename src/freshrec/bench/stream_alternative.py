"""Ingestion against a stream-processing library: the SPEC §3 views maintained by Pathway, on one thread.

Pathway (Rust differential-dataflow engine, Python API) was chosen over bytewax because its operators are
declarative and incremental like the SPEC's SQL: ``groupby().reduce()``, ``windowby`` with epoch-aligned
``tumbling`` / ``sliding`` windows, and an incremental ``interval_join`` for the co-visit self-join. bytewax
would need every view written as per-record Python state, which is freshrec again in another framework.

The events go in as a stream through Pathway's Python connector (``pw.io.python``), committed every
1,000 events, the batch size freshrec applies them in: each commit is one Pathway timestamp after which
every view is up to date, as every 1,000-event batch is for freshrec. (Reading a JSON-lines file
in static mode parses faster but hands the engine one batch: a bulk load, not a stream.) The views go
to ``pw.io.null`` sinks, so no Python runs per output row; :func:`pathway_views` can collect them instead.

Differences, all in the library's favour: the windowed views keep every window (no ``behavior`` cutoff,
which bounds state but doubles the cost of windowing), there is no idempotency by ``event_id``, and
``user_history`` is not maintained (see :data:`VIEWS_MISSING`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from freshrec.config import Settings
from freshrec.engine import Engine
from freshrec.events import Event, validate_events

if TYPE_CHECKING:
    import pathway as pw

LIBRARY = "pathway"
BATCH = 1000

VIEWS = (
    "user_category_profile",
    "user_category_affinity",
    "user_brand_profile",
    "user_price_sensitivity",
    "user_recent_activity",
    "content_trending",
    "item_popularity",
    "co_visits",
    "also_bought",
    "user_items",
)
VIEWS_MISSING = {
    "user_history": "no bounded last-N reducer: pw.reducers.sorted_tuple keeps a user's whole history and "
    "re-emits it on every update (unbounded state, quadratic work); a stateful Python reducer would be "
    "hand-written Python state. (Its purchased set is maintained: the distinct purchases of also_bought.)",
    "user_interest": "the centroid needs the items' text embeddings (an ML model), not a stream operator; "
    "freshrec also derives it at read time from user_items, which is maintained here",
}


@dataclass(slots=True)
class PathwayRun:
    """One run of the Pathway views: wall and CPU seconds from the first event in, and rows if collected."""

    version: str
    seconds: float
    cpu_seconds: float
    rows: dict[str, list[dict[str, Any]]]


def run_stream_alternative(
    items: list[dict[str, Any]],
    events: list[dict[str, Any]],
    *,
    progress: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Events/s of Pathway maintaining the SPEC §3 views, and of freshrec on the same events, one core each.

    ``settings`` default to the bench's (:func:`freshrec.bench.ingest.bench_settings`: vectors come with the
    items, so ``user_interest`` is maintained too without running a text model).

    Both get the same events, validated by freshrec beforehand (neither timing includes validation),
    in batches of 1,000. Seconds are wall-clock from the first event in to every view computed;
    ``cpu_seconds`` (all threads of the process) tell whether another process took the core meanwhile.
    """
    say = progress or (lambda _message: None)
    if settings is None:
        from freshrec.bench.ingest import bench_settings

        settings = bench_settings()
    batches = [
        validate_events(events[start : start + BATCH], settings.events, received_at=time.time())
        for start in range(0, len(events), BATCH)
    ]
    validated = [event for batch in batches for event in batch]
    n = len(validated)

    say(f"{LIBRARY}: {n:,} events through {len(VIEWS)} views on one thread")
    run = pathway_views(items, validated, settings, collect=False)
    library_rate = n / run.seconds
    say(f"{LIBRARY}: {library_rate:,.0f} events/s")

    say(f"freshrec: the same {n:,} events")
    engine = Engine(settings)
    engine.upsert_items(items)
    cpu, started = time.process_time(), time.perf_counter()
    for batch in batches:
        engine.ingest_events(batch)
    freshrec_seconds = time.perf_counter() - started
    freshrec_cpu = time.process_time() - cpu
    freshrec_rate = n / freshrec_seconds
    say(f"freshrec: {freshrec_rate:,.0f} events/s")

    return {
        "library": LIBRARY,
        "version": run.version,
        "threads": 1,
        "input": f"pw.io.python connector, commit every {BATCH:,} events; outputs to pw.io.null",
        "events": n,
        "events_per_s": library_rate,
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "views": list(VIEWS),
        "views_missing": [f"{name}: {why}" for name, why in VIEWS_MISSING.items()],
        "freshrec_events_per_s": freshrec_rate,
        "freshrec_seconds": freshrec_seconds,
        "freshrec_cpu_seconds": freshrec_cpu,
        "ratio_freshrec_over_library": freshrec_rate / library_rate,
    }


def pathway_views(
    items: list[dict[str, Any]], events: list[Event], settings: Settings, *, collect: bool
) -> PathwayRun:
    """Stream ``events`` through the Pathway views on one worker thread.

    With ``collect`` every view's final rows are gathered (by a Python callback per output change,
    which costs time: leave it off to measure).
    """
    with _pathway():
        import pathway as pw
        from pathway.internals.parse_graph import G

        try:
            first_event_at: list[float] = []
            event_table = pw.io.python.read(
                _event_subject(events, first_event_at), schema=_event_schema(), autocommit_duration_ms=None
            )
            # the catalog is known before the first event, as freshrec's is: a static table
            catalog = pw.debug.table_from_rows(_item_schema(), [_catalog_row(item) for item in items])
            reference = events[0].ts if events else 0.0
            views = build_views(event_table, catalog, settings, reference)
            rows: dict[str, dict[Any, dict[str, Any]]] = {name: {} for name in views}
            for name, table in views.items():
                if collect:
                    pw.io.subscribe(table, on_change=_collector(rows[name]))
                else:
                    pw.io.null.write(table)
            cpu = time.process_time()
            pw.run(monitoring_level=pw.MonitoringLevel.NONE, default_logging=False)
            ended = time.perf_counter()
            cpu = time.process_time() - cpu
        finally:
            G.clear()  # else Pathway warns at exit about operators that never ran
    started = first_event_at[0] if first_event_at else ended
    found = {name: list(by_key.values()) for name, by_key in rows.items()}
    return PathwayRun(pw.__version__, ended - started, cpu, found)


def build_views(
    events: pw.Table[Any], catalog: pw.Table[Any], settings: Settings, reference: float
) -> dict[str, pw.Table[Any]]:
    """The SPEC §3 views as Pathway tables, from the event stream and the catalog.

    ``reference`` is the time the decayed sums are kept relative to (``2^((ts − reference)/half_life)``
    grows without bound, so a long-running deployment would have to re-base it: Pathway has no decayed
    reducer).
    """
    import pathway as pw

    this, reducers = pw.this, pw.reducers
    weights = settings.events.weights
    # an event's own attributes describe the item for that event, else the catalog's (SPEC §1)
    joined = events.join_left(catalog, events.item_id == catalog.item_id).select(
        *pw.left,
        category=pw.coalesce(pw.left.event_category, pw.right.category),
        brand=pw.coalesce(pw.left.event_brand, pw.right.brand),
        price=pw.coalesce(pw.left.event_price, pw.right.price),
    )
    e = joined.with_columns(
        weight=_lookup(this.type, weights, 0.0),
        dwell=pw.coalesce(this.dwell_seconds, 0.0),
        has_dwell=pw.cast(int, this.dwell_seconds.is_not_none()),
    )
    views: dict[str, pw.Table[Any]] = {}

    half_life = settings.views.decay_half_life_seconds
    categorised = e.filter(this.category.is_not_none())
    views["user_category_profile"] = (
        categorised.groupby(this.user_id, this.category)
        .reduce(
            this.user_id,
            this.category,
            affinity_score=reducers.sum(this.weight),
            decayed_sum=reducers.sum(this.weight * 2.0 ** ((this.ts - reference) / half_life)),
            unique_items_interacted=reducers.count_distinct(this.item_id),
            last_engaged_at=reducers.max(this.ts),
            **_type_counts(settings),
        )
        .with_columns(
            # as of the user's last event in the category; × 2^(−(now − last)/half_life) at read time
            decayed_affinity_at_last=this.decayed_sum
            * 2.0 ** (-(this.last_engaged_at - reference) / half_life)
        )
        .without(this.decayed_sum)
    )

    v = settings.views
    window_score = _lookup(this.type, v.category_window_types, 0.0)
    views["user_category_affinity"] = (
        categorised.windowby(
            this.ts,
            window=pw.temporal.tumbling(duration=v.category_window_seconds, origin=0.0),
            instance=pw.make_tuple(this.user_id, this.category),
        )
        .reduce(
            user_id=this._pw_instance[0],
            category=this._pw_instance[1],
            window_start=this._pw_window_start,
            window_end=this._pw_window_end,
            views=reducers.sum(pw.cast(int, this.type == "view")),
            clicks=reducers.sum(pw.cast(int, this.type == "click")),
            shares=reducers.sum(pw.cast(int, this.type == "share")),
            saves=reducers.sum(pw.cast(int, this.type == "save")),
            total_dwell_seconds=reducers.sum(this.dwell),
            dwell_events=reducers.sum(this.has_dwell),
            affinity_score=reducers.sum(window_score),
        )
        .with_columns(avg_dwell_seconds=_ratio(this.total_dwell_seconds, this.dwell_events))
        .without(this.dwell_events)
    )
    views["user_recent_activity"] = categorised.windowby(
        this.ts,
        window=pw.temporal.tumbling(duration=v.activity_window_seconds, origin=0.0),
        instance=pw.make_tuple(this.user_id, this.category),
    ).reduce(
        user_id=this._pw_instance[0],
        category=this._pw_instance[1],
        window_start=this._pw_window_start,
        window_end=this._pw_window_end,
        recent_interactions=_count(),
    )

    views["user_brand_profile"] = (
        e.filter(this.brand.is_not_none())
        .groupby(this.user_id, this.brand)
        .reduce(
            this.user_id,
            this.brand,
            brand_affinity=reducers.sum(this.weight),
            purchase_count=reducers.sum(pw.cast(int, this.type == "purchase")),
            last_brand_interaction=reducers.max(this.ts),
        )
    )
    priced = e.filter(this.price.is_not_none()).with_columns(
        price_tier=_tier(pw.unwrap(this.price), settings.price_tiers.bounds, settings.price_tiers.names)
    )
    views["user_price_sensitivity"] = (
        priced.groupby(this.user_id, this.price_tier)
        .reduce(
            this.user_id,
            this.price_tier,
            views=reducers.sum(pw.cast(int, this.type == "view")),
            purchases=reducers.sum(pw.cast(int, this.type == "purchase")),
        )
        .with_columns(conversion_rate=_ratio(this.purchases, this.views))
    )
    views.update(_item_views(e, settings))
    return views


def _item_views(e: pw.Table[Any], settings: Settings) -> dict[str, pw.Table[Any]]:
    """``content_trending``, ``item_popularity``, ``co_visits``, ``also_bought`` and ``user_items``."""
    import pathway as pw

    this, reducers = pw.this, pw.reducers
    v = settings.views
    views: dict[str, pw.Table[Any]] = {}
    views["content_trending"] = (
        e.windowby(
            this.ts,
            window=pw.temporal.sliding(
                hop=v.trending_slide_seconds, duration=v.trending_window_seconds, origin=0.0
            ),
            instance=this.item_id,
        )
        .reduce(
            item_id=this._pw_instance,
            window_start=this._pw_window_start,
            window_end=this._pw_window_end,
            recent_views=reducers.sum(pw.cast(int, this.type == "view")),
            recent_clicks=reducers.sum(pw.cast(int, this.type == "click")),
            unique_users=reducers.count_distinct(this.user_id),
            dwell_total=reducers.sum(this.dwell),
            dwell_events=reducers.sum(this.has_dwell),
        )
        .with_columns(
            avg_dwell=_ratio(this.dwell_total, this.dwell_events),
            trending_score=v.trending_view_weight * this.recent_views
            + v.trending_click_weight * this.recent_clicks
            + v.trending_unique_user_weight * this.unique_users,
        )
        .without(this.dwell_total, this.dwell_events)
    )
    views["item_popularity"] = e.groupby(this.item_id).reduce(
        this.item_id,
        **_type_counts(settings),
        weighted_total=reducers.sum(this.weight),
    )
    views["user_items"] = e.groupby(this.user_id, this.item_id).reduce(
        this.user_id, this.item_id, interactions=_count(), weight=reducers.sum(this.weight)
    )

    # co_visits: the SQL self-join, incrementally: 0 < after.ts − before.ts ≤ window for one user's events
    after = e.select(this.user_id, this.item_id, this.ts)
    before = after.copy()
    pairs = pw.temporal.interval_join(
        after,
        before,
        after.ts,
        before.ts,
        pw.temporal.interval(-v.co_visit_window_seconds, 0.0),
        after.user_id == before.user_id,
    ).select(after_item=after.item_id, before_item=before.item_id, after_ts=after.ts, before_ts=before.ts)
    views["co_visits"] = (
        pairs.filter(this.before_ts < this.after_ts)
        .groupby(this.before_item, this.after_item)
        .reduce(this.before_item, this.after_item, frequency=_count())
    )

    purchases = (
        e.filter(this.type == "purchase")
        .groupby(this.user_id, this.item_id)
        .reduce(this.user_id, this.item_id)
    )
    others = purchases.copy()
    views["also_bought"] = (
        purchases.join(others, purchases.user_id == others.user_id)
        .select(item_id=purchases.item_id, other_item_id=others.item_id)
        .filter(this.item_id != this.other_item_id)
        .groupby(this.item_id, this.other_item_id)
        .reduce(this.item_id, this.other_item_id, users=_count())
    )
    return views


def _type_counts(settings: Settings) -> dict[str, Any]:
    """A ``<type>_count`` reducer per configured event type."""
    import pathway as pw

    return {
        f"{kind}_count": pw.reducers.sum(pw.cast(int, pw.this.type == kind))
        for kind in settings.events.weights
    }


def _lookup(column: Any, table: Mapping[str, float], default: float) -> Any:
    """``table[column]`` as an engine expression (a chain of ``if_else``), ``default`` when absent."""
    import pathway as pw

    expression: Any = pw.declare_type(float, default)
    for key, value in table.items():
        expression = pw.if_else(column == key, value, expression)
    return expression


def _tier(price: Any, bounds: list[float], names: list[str]) -> Any:
    """The price tier as an engine expression: ``names[i]`` for ``bounds[i−1] ≤ price < bounds[i]``."""
    import pathway as pw

    expression: Any = names[-1]
    for bound, name in zip(reversed(bounds), reversed(names[:-1]), strict=True):
        expression = pw.if_else(price < bound, name, expression)
    return expression


def _ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator``, None when the denominator is 0."""
    import pathway as pw

    return pw.if_else(denominator > 0, numerator / denominator, None)


def _count() -> Any:
    """``pw.reducers.count()``: the one reducer pathway 0.33 leaves unannotated."""
    import pathway as pw

    return pw.reducers.count()  # type: ignore[no-untyped-call]


def _collector(into: dict[Any, dict[str, Any]]) -> Callable[..., None]:
    """A ``pw.io.subscribe`` callback keeping each output row's latest version by its key."""

    def on_change(key: Any, row: dict[str, Any], time: int, is_addition: bool) -> None:
        if is_addition:
            into[key] = row
        elif into.get(key) == row:  # an update may send the new version before retracting the old
            del into[key]

    return on_change


def _catalog_row(item: Mapping[str, Any]) -> tuple[str, str | None, str | None, float | None]:
    price = item.get("price")
    return (
        str(item["item_id"]),
        item.get("category"),
        item.get("brand"),
        None if price is None else float(price),
    )


def _event_schema() -> Any:
    import pathway as pw

    class EventSchema(pw.Schema):
        event_id: str
        user_id: str
        item_id: str
        type: str
        ts: float
        dwell_seconds: float | None
        event_category: str | None
        event_brand: str | None
        event_price: float | None

    return EventSchema


def _item_schema() -> Any:
    import pathway as pw

    class ItemSchema(pw.Schema):
        item_id: str = pw.column_definition(primary_key=True)
        category: str | None
        brand: str | None
        price: float | None

    return ItemSchema


def _event_subject(events: list[Event], first_event_at: list[float]) -> Any:
    """A connector that sends ``events`` and commits every :data:`BATCH`; notes when the first went in."""
    import pathway as pw

    class EventSubject(pw.io.python.ConnectorSubject):
        def run(self) -> None:
            send, commit = self.next, self.commit
            first_event_at.append(time.perf_counter())
            for n, e in enumerate(events, 1):
                send(
                    event_id=e.event_id,
                    user_id=e.user_id,
                    item_id=e.item_id,
                    type=e.type,
                    ts=e.ts,
                    dwell_seconds=e.dwell_seconds,
                    event_category=e.category,
                    event_brand=e.brand,
                    event_price=e.price,
                )
                if n % BATCH == 0:
                    commit()

    return EventSubject()


@contextlib.contextmanager
def _pathway() -> Iterator[None]:
    """Pathway set to one worker thread, quiet, and without the warnings it raises itself."""
    try:
        from beartype.roar import BeartypeDecorHintPep585DeprecationWarning
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(_INSTALL_HINT) from exc
    saved_env = {name: os.environ.get(name) for name in ("PATHWAY_THREADS", "PATHWAY_PROCESSES")}
    os.environ["PATHWAY_THREADS"] = os.environ["PATHWAY_PROCESSES"] = "1"
    engine_log = logging.getLogger("pathway_engine")
    saved_level = engine_log.level
    engine_log.setLevel(logging.ERROR)  # per-connector INFO/WARNING lines ("Closing the data source")
    try:
        with warnings.catch_warnings():
            # pathway 0.33 wraps its API in beartype, which warns that pathway's own ``typing.Iterable``
            # hints are deprecated (PEP 585) on first use: nothing of ours, and harmless
            warnings.filterwarnings("ignore", category=BeartypeDecorHintPep585DeprecationWarning)
            try:
                import pathway  # noqa: F401
            except ImportError as exc:  # pragma: no cover - depends on the installed extras
                raise ImportError(_INSTALL_HINT) from exc
            yield
    finally:
        engine_log.setLevel(saved_level)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_INSTALL_HINT = "the stream-library comparison needs Pathway: pip install 'freshrec[bench]'"
