"""Event records from warehouse files — Parquet, CSV and JSON Lines — a batch at a time, never a whole file.

Columns are renamed to freshrec's event fields by a :class:`ColumnMap` (``user_id=uid``: the field
``user_id`` is read from the column ``uid``), constant fields can be set (``type=click``), and the other
columns are kept in ``properties`` (or dropped, when asked). Values are converted only where a warehouse
type has an exact reading as the field (integer ids become strings, typed timestamps unix seconds); every
other check is the validation of ``POST /v1/events``, done by the caller, so a bad value is rejected with
the same message there.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from freshrec.datasets.files import BadFile
from freshrec.events import EventIn

FILE_FORMATS = ("auto", "parquet", "csv", "jsonl")
EVENT_FIELDS = tuple(EventIn.model_fields)
STRING_FIELDS = frozenset(
    f for f, info in EventIn.model_fields.items() if info.annotation in (str, str | None)
)
NUMBER_FIELDS = frozenset({"price", "dwell_seconds"})
Record = dict[str, Any]
UNREADABLE = "__unreadable__"


@dataclass(frozen=True)
class ColumnMap:
    """Which column each event field is read from, fields set to one value, and what other columns become."""

    fields: Mapping[str, str] = field(default_factory=dict)  # event field -> source column
    constants: Mapping[str, Any] = field(default_factory=dict)  # event field -> value for every row
    extra: str = "properties"  # or "ignore"

    @classmethod
    def parse(cls, maps: Sequence[str], sets: Sequence[str], extra: str = "properties") -> ColumnMap:
        """From ``--map FIELD=COLUMN`` and ``--set FIELD=VALUE`` options; unknown fields are errors."""
        return cls(_pairs(maps, "--map"), _pairs(sets, "--set"), extra)

    def source_of(self, target: str) -> str:
        return self.fields.get(target, target)

    def targets(self, columns: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """``column -> field`` for the columns that are fields, and the other columns."""
        wanted = {self.source_of(f): f for f in EVENT_FIELDS if f not in self.constants}
        named = {c: wanted[c] for c in columns if c in wanted}
        return named, [c for c in columns if c not in named]


def _pairs(options: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for option in options:
        target, sep, value = option.partition("=")
        target = target.strip()
        if not sep or not target or not value:
            raise ValueError(f"{flag} {option!r}: expected FIELD=VALUE, e.g. {flag} user_id=uid")
        if target not in EVENT_FIELDS:
            raise ValueError(
                f"{flag} {option!r}: {target!r} is not an event field ({', '.join(EVENT_FIELDS)})"
            )
        out[target] = value
    return out


def detect_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise BadFile(f"{path}: cannot tell the format from the name; pass --format parquet|csv|jsonl")


def row_count(path: Path, fmt: str) -> int | None:
    """Rows of a Parquet file (from its footer); None for formats that would need a pass to count."""
    return pq.ParquetFile(path).metadata.num_rows if fmt == "parquet" else None


def read_batches(
    path: Path, fmt: str, columns: ColumnMap, size: int, assume_utc: bool = False
) -> Iterator[list[Record | None]]:
    """Records of ``path`` in batches of at most ``size`` rows, in file order, with the event field names.

    A row that cannot even be read as a record (a JSON line that is not an object) comes as
    ``{UNREADABLE: message}``, so that the caller rejects it at its row like any other; a blank JSON line
    comes as None (nothing to import, but it keeps row numbers equal to line numbers).
    """
    chosen = detect_format(path) if fmt == "auto" else fmt
    try:
        if chosen == "jsonl":
            yield from _jsonl_batches(path, columns, size)
            return
        if chosen == "parquet":
            batches: Iterator[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(batch_size=size)
        elif chosen == "csv":
            batches = _csv_batches(path, columns, size)
        else:
            raise BadFile(f"unknown format {fmt!r}; expected one of {', '.join(FILE_FORMATS)}")
        for batch in batches:
            for start in range(0, batch.num_rows, size):
                yield _records(path, batch.slice(start, size), columns, assume_utc)
    except (pa.ArrowException, OSError) as exc:
        raise BadFile(f"{path}: cannot be read as {chosen}: {exc}") from None


# -- columnar files ---------------------------------------------------------------------------------------
def _csv_batches(path: Path, columns: ColumnMap, size: int) -> Iterator[pa.RecordBatch]:
    # text fields stay text (an id column of digits is still an id); the rest is typed by arrow
    text = {columns.source_of(f): pa.string() for f in STRING_FIELDS | {"timestamp"}}
    reader = pa_csv.open_csv(
        str(path),  # decompressed by its extension (.gz, .bz2, ...)
        read_options=pa_csv.ReadOptions(block_size=1 << 22),
        convert_options=pa_csv.ConvertOptions(column_types=text, strings_can_be_null=True),
    )
    yield from reader


def _records(path: Path, batch: pa.RecordBatch, columns: ColumnMap, assume_utc: bool) -> list[Record | None]:
    named, others = columns.targets(batch.schema.names)
    arrays: dict[str, pa.Array[Any]] = {}
    values: dict[str, list[Any]] = {}  # columns whose values are of mixed types
    for column, target in named.items():
        converted = _converted(path, column, target, batch.column(column), assume_utc)
        if isinstance(converted, list):
            values[target] = converted
        else:
            arrays[target] = converted
    extra: list[Record] | None = None
    if others and columns.extra == "properties":
        extra = pa.table({c: _json_safe(batch.column(c)) for c in others}).to_pylist()
    names = list(arrays)
    rows = pa.table(arrays).to_pylist() if names else [{} for _ in range(batch.num_rows)]
    constants = dict(columns.constants)
    out: list[Record | None] = []
    for n, row in enumerate(rows):
        record = {k: v for k, v in row.items() if v is not None}
        for target, column_values in values.items():
            if column_values[n] is not None:
                record[target] = column_values[n]
        if constants:
            record.update(constants)
        if extra is not None:
            kept = {k: v for k, v in extra[n].items() if v is not None}
            if kept:
                record["properties"] = {**kept, **(record.get("properties") or {})}
        out.append(record)
    return out


def _converted(
    path: Path, column: str, target: str, array: pa.Array[Any], assume_utc: bool
) -> pa.Array[Any] | list[Any]:
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.cast(kind.value_type)
        kind = array.type
    if target in STRING_FIELDS and pa.types.is_integer(kind):
        return array.cast(pa.string())
    if target == "timestamp" and pa.types.is_timestamp(kind):
        if kind.tz is None and not assume_utc:
            raise BadFile(
                f"{path}: column {column!r} holds timestamps without a time zone; pass --assume-utc to read "
                "them as UTC"
            )
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
        ticks = array.cast(pa.timestamp(kind.unit)).cast(pa.int64())
        return pc.divide(ticks.cast(pa.float64()), float(per_second))
    numeric = target == "timestamp" or target in NUMBER_FIELDS
    if numeric and (pa.types.is_integer(kind) or pa.types.is_decimal(kind) or pa.types.is_floating(kind)):
        return array.cast(pa.float64())
    if numeric and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return _numbers_in_text(array)
    return array


def _numbers_in_text(array: pa.Array[Any]) -> pa.Array[Any] | list[Any]:
    """Text that reads as numbers (a CSV column) as numbers; when some values do not, a list in which
    they stay text, for validation to reject (or, for ``timestamp``, to read as RFC 3339)."""
    try:
        return array.cast(pa.float64())
    except pa.ArrowInvalid:
        return [_number_or_text(v) for v in array.to_pylist()]


def _number_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _json_safe(array: pa.Array[Any]) -> pa.Array[Any]:
    """A column kept in ``properties`` as values JSON can hold: decimals as floats, times as ISO text."""
    kind = array.type
    if pa.types.is_decimal(kind):
        return array.cast(pa.float64())
    if pa.types.is_temporal(kind):
        return array.cast(pa.string())
    return array


# -- JSON lines -------------------------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[bytes]:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as packed:
            yield from packed
    else:
        with path.open("rb") as plain:
            yield from plain


def _jsonl_batches(path: Path, columns: ColumnMap, size: int) -> Iterator[list[Record | None]]:
    sources = {columns.source_of(f): f for f in EVENT_FIELDS if f not in columns.constants}
    constants = dict(columns.constants)
    keep_extra = columns.extra == "properties"
    batch: list[Record | None] = []
    for line in _lines(path):
        # a blank line holds nothing: None keeps the row numbers equal to line numbers
        batch.append(_json_record(line, sources, constants, keep_extra) if line.strip() else None)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _json_record(
    line: bytes, sources: Mapping[str, str], constants: Mapping[str, Any], keep_extra: bool
) -> Record:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return {UNREADABLE: f"not valid JSON ({exc})"}
    if not isinstance(raw, dict):
        return {UNREADABLE: "expected a JSON object"}
    record: Record = {}
    extra: Record = {}
    for key, value in raw.items():
        target = sources.get(key)
        if target is None:
            if value is not None:
                extra[key] = value
            continue
        if value is None:
            continue
        is_number = isinstance(value, int) and not isinstance(value, bool)
        record[target] = str(value) if is_number and target in STRING_FIELDS else value
    record.update(constants)
    if extra and keep_extra:
        record["properties"] = {**extra, **(record.get("properties") or {})}
    return record
