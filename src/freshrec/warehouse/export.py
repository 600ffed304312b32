"""Export: any view's rows to Parquet, CSV or JSON Lines (the rows ``GET /v1/views/{view}`` returns)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

EXPORT_FORMATS = ("parquet", "csv", "jsonl")
Row = dict[str, Any]


def write_rows(rows: Sequence[Row], path: Path, fmt: str) -> int:
    """Write ``rows`` (dicts with the same keys) to ``path``; returns how many were written.

    Parquet keeps lists (``user_interest``'s centroid) as list columns; CSV has no lists, so a list or
    object value is written as its JSON text. A view with no rows gives a file with no rows.
    """
    if fmt == "jsonl":
        with path.open("wb") as fh:
            for row in rows:
                fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE))
        return len(rows)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    table = _table(rows, as_text=fmt == "csv")
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return len(rows)


def _table(rows: Sequence[Row], as_text: bool) -> pa.Table:
    names: list[str] = []
    for row in rows[:1]:
        names = list(row)
    columns: dict[str, list[Any]] = {name: [row.get(name) for row in rows] for name in names}
    if as_text:
        for name, values in columns.items():
            if any(isinstance(v, (list, dict, tuple)) for v in values):
                columns[name] = [None if v is None else orjson.dumps(v).decode() for v in values]
    return pa.table({name: pa.array(values) for name, values in columns.items()})
