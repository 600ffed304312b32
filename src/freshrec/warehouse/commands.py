"""``freshrec import-events`` and ``freshrec export``: warehouse files in, view rows out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import click
import httpx
import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from freshrec.cli import _settings as settings_from
from freshrec.cli import config_option, console, main
from freshrec.datasets.files import BadFile
from freshrec.errors import NotFound
from freshrec.events import Event
from freshrec.storage.datadir import DataDir, DataDirLocked
from freshrec.warehouse.backfill import Backfill, EngineTarget, Reject
from freshrec.warehouse.export import EXPORT_FORMATS, write_rows
from freshrec.warehouse.read import FILE_FORMATS, ColumnMap, Record, detect_format, row_count

# a line per request would bury the progress and the summary
logging.getLogger("httpx").setLevel(logging.WARNING)

SHOWN_REJECTS = 5
PAGE = 100_000  # rows per request when exporting from a server (the route's largest limit)


class ServerTarget:
    """A running server: each batch of validated records is posted to ``POST /v1/events``."""

    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120.0)

    def send(self, records: list[Record], events: list[Event]) -> int:
        response = self.client.post("/v1/events", content=orjson.dumps(records))
        if response.status_code != 202:
            raise click.ClickException(
                f"the server refused a batch ({response.status_code}): {response.text[:500]}"
            )
        body = response.json()
        return int(body["accepted"]) - int(body.get("duplicates", 0))


def _client(url: str, api_key: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120.0)


def _open_datadir(path: Path, config: Path | None) -> DataDir:
    try:
        return DataDir(path, settings_from(config, clock="event"))
    except DataDirLocked as exc:
        raise click.ClickException(f"{exc} (or use --url to go through the running server)") from None


@main.command("import-events")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--format", "fmt", type=click.Choice(FILE_FORMATS), default="auto", show_default=True)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Read an event field from a column (repeatable).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Give every row this field value, e.g. type=click.",
)
@click.option(
    "--extra-columns",
    type=click.Choice(["properties", "ignore"]),
    default="properties",
    show_default=True,
    help="What columns that are no event field become.",
)
@click.option("--assume-utc", is_flag=True, help="Read timestamps without a time zone as UTC.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--url", default=None, help="A running server instead of a data directory.")
@click.option(
    "--api-key", envvar="FRESHREC_API_KEY", default=None, help="Write key, when the server has one."
)
@click.option("--batch", type=click.IntRange(1, 10_000), default=10_000, show_default=True)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every rejected row (file, row, problems, record) here as JSON lines.",
)
@config_option
def import_events(
    files: tuple[Path, ...],
    fmt: str,
    maps: tuple[str, ...],
    sets: tuple[str, ...],
    extra_columns: str,
    assume_utc: bool,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    batch: int,
    rejects: Path | None,
    config: Path | None,
) -> None:
    """Backfill events from Parquet, CSV or JSON Lines FILES (.gz too) into a data dir or a server.

    Rows are validated like POST /v1/events; a rejected row is reported with its file and row number and
    the others are imported. Exits with status 1 when any row was rejected.
    """
    if (url is None) == (data_dir is None):
        raise click.UsageError(
            "give exactly one of --data-dir (no server running) or --url (a running server)"
        )
    try:
        columns = ColumnMap.parse(maps, sets, extra_columns)
        total = sum(row_count(p, detect_format(p) if fmt == "auto" else fmt) or 0 for p in files)
    except (ValueError, BadFile) as exc:
        raise click.UsageError(str(exc)) from None
    datadir = None
    if url is not None:
        target: Any = ServerTarget(url, api_key)
        settings = settings_from(config, clock="event")
    else:
        assert data_dir is not None
        datadir = _open_datadir(data_dir, config)
        settings = datadir.settings
        with console.status(f"opening {data_dir} ..."):
            target = EngineTarget(datadir.open_engine(), datadir)
    shown: list[Reject] = []
    sink: IO[bytes] | None = rejects.open("wb") if rejects is not None else None

    def on_reject(reject: Reject) -> None:
        if len(shown) < SHOWN_REJECTS:
            shown.append(reject)
        if sink is not None:
            line = {
                "file": reject.file,
                "row": reject.row,
                "problems": reject.problems,
                "record": reject.record,
            }
            sink.write(orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE))

    columns_shown = (
        TextColumn("importing"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns_shown, console=console) as progress:
            task = progress.add_task("import", total=total or None, speed="")

            def on_batch(rows: int) -> None:
                elapsed = max(1e-9, progress.tasks[0].elapsed or 1e-9)
                done = progress.tasks[0].completed + rows
                progress.update(task, advance=rows, speed=f"{done / elapsed:,.0f} rows/s")

            backfill = Backfill(settings, target, columns, batch, on_reject, on_batch, assume_utc)
            stats = backfill.run(files, fmt)
    except BadFile as exc:
        raise click.ClickException(f"{exc} (every batch before it was stored)") from None
    finally:
        if sink is not None:
            sink.close()
        if datadir is not None:
            datadir.close()
    console.print(
        f"[green]done[/]: {stats.accepted:,} events accepted ({stats.applied:,} new), "
        f"{stats.rejected:,} rejected, {stats.events_per_second:,.0f} events/s"
    )
    if stats.rejected:
        for reject in shown:
            console.print(f"  [red]rejected[/] {reject.line()}")
        where = f"; all of them are in {rejects}" if rejects else "; pass --rejects FILE to keep them all"
        raise click.ClickException(f"{stats.rejected:,} row(s) were rejected{where}")


@main.command("export")
@click.argument("view")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="parquet", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="[default: VIEW.FORMAT]",
)
@click.option("--key", default=None, help="Only the rows of this user, item or category (the view's key).")
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None)
@click.option("--url", default=None, help="A running server instead of a data directory.")
@click.option("--api-key", envvar="FRESHREC_API_KEY", default=None, help="Read key, when the server has one.")
@config_option
def export(
    view: str,
    fmt: str,
    output: Path | None,
    key: str | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    config: Path | None,
) -> None:
    """Write the rows of VIEW (e.g. user_category_affinity) to Parquet, CSV or JSON Lines."""
    if (url is None) == (data_dir is None):
        raise click.UsageError(
            "give exactly one of --data-dir (no server running) or --url (a running server)"
        )
    path = output or Path(f"{view}.{fmt}")
    if url is not None:
        rows = _server_rows(url, api_key, view, key)
    else:
        assert data_dir is not None
        datadir = _open_datadir(data_dir, config)
        try:
            with console.status(f"opening {data_dir} ..."):
                engine = datadir.open_engine()
            rows = engine.view_rows(view, key)
        except NotFound as exc:
            raise click.ClickException(f"no {exc.what}") from None
        finally:
            datadir.close(snapshot=False)
    count = write_rows(rows, path, fmt)
    console.print(f"[green]wrote[/] {count:,} rows of {view} to {path}")


def _server_rows(url: str, api_key: str | None, view: str, key: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    keyed_by: str | None = None
    with _client(url, api_key) as client:
        while True:
            params: dict[str, Any] = {"limit": PAGE, "offset": len(rows)}
            if key is not None:
                if keyed_by is None:  # the view's key, from its first page
                    keyed_by = _get(client, url, view, {"limit": 1})["keyed_by"]
                params[str(keyed_by)] = key
            body = _get(client, url, view, params)
            rows.extend(body["rows"])
            if not body["rows"] or len(rows) >= body["total"]:
                return rows


def _get(client: httpx.Client, url: str, view: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/views/{view}", params=params)
    if response.status_code != 200:
        raise click.ClickException(f"{url} answered {response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body
