"""Records from files: JSON lines, CSV (optionally gzip-compressed), and known public data sets
(the DataSQRL clickstream example; MovieLens and RecBole directories, see :mod:`.movielens`).

Every reader yields ``(kind, record)`` with kind ``"event"`` or ``"item"`` in freshrec's own field names,
so the same replay loop feeds a server or a data directory.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from freshrec.events import parse_rfc3339

Kind = Literal["event", "item"]
FORMATS = ("auto", "jsonl", "csv", "datasqrl", "movielens", "recbole")


class BadFile(Exception):
    """A file that cannot be read as the format asked for; the message says where and why."""


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def detect_format(path: Path) -> str:
    from freshrec.datasets.movielens import dataset_format, find_dataset

    if path.is_dir():
        return "recbole" if find_dataset(path).layout == "recbole" else "movielens"
    known = dataset_format(path)
    if known is not None:
        return known
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    with open_text(path) as fh:
        first = fh.readline()
    try:
        sample = orjson.loads(first)
    except orjson.JSONDecodeError:
        raise BadFile(f"{path}: cannot tell the format from the first line; pass --format") from None
    if isinstance(sample, dict) and (
        {"userid", "url", "event_time"} <= sample.keys() or "_source_time" in sample
    ):
        return "datasqrl"
    return "jsonl"


def read_records(
    path: Path, fmt: str = "auto", kind: Kind | None = None
) -> Iterator[tuple[Kind, dict[str, Any]]]:
    """Records of one file. ``kind`` forces events or items; otherwise each record's fields decide.

    MovieLens and RecBole data sets are read from their directory or any file in it; naming the movies
    file reads the items only, and ``kind`` keeps only that kind of record.
    """
    if not path.exists():
        raise BadFile(f"{path}: no such file")
    chosen = detect_format(path) if fmt == "auto" else fmt
    if chosen in ("movielens", "recbole"):
        from freshrec.datasets.movielens import read_movielens

        yield from read_movielens(path, fmt=chosen, kind=kind)
        return
    if path.is_dir():
        raise BadFile(f"{path}: is a directory; only MovieLens and RecBole data sets are read from one")
    if chosen == "datasqrl":
        yield from _datasqrl(path)
    elif chosen == "jsonl":
        yield from _jsonl(path, kind)
    elif chosen == "csv":
        yield from _csv(path, kind)
    else:
        raise BadFile(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _kind_of(record: dict[str, Any], forced: Kind | None) -> Kind:
    if forced is not None:
        return forced
    return "event" if "user_id" in record and "type" in record else "item"


def _jsonl(path: Path, kind: Kind | None) -> Iterator[tuple[Kind, dict[str, Any]]]:
    with open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BadFile(f"{path}:{number}: not valid JSON ({exc})") from None
            if not isinstance(record, dict):
                raise BadFile(f"{path}:{number}: expected a JSON object")
            yield _kind_of(record, kind), record


_NUMBERS = {"price", "dwell_seconds"}
_BOOLS = {"in_stock"}


def _csv(path: Path, kind: Kind | None) -> Iterator[tuple[Kind, dict[str, Any]]]:
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            record: dict[str, Any] = {}
            for key, value in row.items():
                if key is None or value is None or value == "":
                    continue
                record[key] = _csv_value(path, reader.line_num, key, value)
            yield _kind_of(record, kind), record


def _csv_value(path: Path, number: int, key: str, value: str) -> Any:
    try:
        if key in _NUMBERS:
            return float(value)
        if key == "timestamp":
            return float(value) if value.replace(".", "", 1).isdigit() else value
        if key in _BOOLS:
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if key == "tags":
            return [t for t in value.split("|") if t]
    except ValueError:
        raise BadFile(f"{path}:{number}: column {key!r} has {value!r}, which is not valid for it") from None
    return value


def _datasqrl(path: Path) -> Iterator[tuple[Kind, dict[str, Any]]]:
    """The DataSQRL clickstream example: content lines become items, click lines ``click`` events."""
    with open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = orjson.loads(line)
                if "userid" in raw:
                    ts = parse_rfc3339(raw["event_time"])
                    yield (
                        "event",
                        {
                            "event_id": _stable_id(
                                f"{raw['userid']}|{raw['url']}|{raw['event_time']}|{number}"
                            ),
                            "user_id": raw["userid"],
                            "item_id": raw["url"],
                            "type": "click",
                            "timestamp": ts,
                        },
                    )
                else:
                    yield (
                        "item",
                        {
                            "item_id": raw["url"],
                            "url": raw["url"],
                            "title": raw.get("title"),
                            "text": raw.get("text"),
                            "content_type": "article",
                            "properties": {"source_id": str(raw.get("id"))},
                        },
                    )
            except (KeyError, ValueError, TypeError) as exc:
                raise BadFile(
                    f"{path}:{number}: not a DataSQRL content or clickstream line ({exc})"
                ) from None


def _stable_id(text: str) -> str:
    """A short id that is the same every time the same line is read (so re-replays are idempotent)."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
