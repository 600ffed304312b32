"""Rows of a PostgreSQL items table as catalog items: the column mapping and the value conversions.

Values arrive in PostgreSQL's text format (from the snapshot and from pgoutput alike) and are turned into
Python values by psycopg's own loaders for each column's type (``numeric`` becomes a Decimal, ``text[]`` a
list, ``jsonb`` a dict ...); the mapping then renames columns to item fields and coerces what SPEC §2's
item needs (an integer key becomes a string id, a Decimal price a float).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.pq import Format

from freshrec.catalog import ItemIn
from freshrec.integrations.pgoutput import UNCHANGED, Value
from freshrec.integrations.postgres import SetupError

ITEM_FIELDS = tuple(ItemIn.model_fields)
_TEXT_FIELDS = {"item_id", "title", "text", "url", "category", "subcategory", "brand", "content_type"}


class ValueLoaders:
    """Text-format values to Python, with psycopg's loader for each type OID (text when it has none)."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self._by_oid: dict[int, Callable[[bytes], Any]] = {}

    def load(self, oid: int, data: Value) -> Any:
        if data is None or data is UNCHANGED:
            return data
        assert isinstance(data, bytes)
        loader = self._by_oid.get(oid)
        if loader is None:
            found = self.connection.adapters.get_loader(oid, Format.TEXT)
            loader = found(oid, self.connection).load if found is not None else _decode_text
            self._by_oid[oid] = loader
        return loader(data)


def _decode_text(data: bytes) -> str:
    return data.decode()


class ItemMapping:
    """Table column -> item field: same-named columns map by themselves, ``configured`` adds or removes."""

    def __init__(self, table: str, columns: Sequence[str], configured: Mapping[str, str | None]) -> None:
        mapping = {c: c for c in columns if c in ITEM_FIELDS}
        for column, field in configured.items():
            if column not in columns:
                raise SetupError(
                    f"catalog_postgres.columns names column {column!r}, which {table} does not have "
                    f"(its columns: {', '.join(columns)})"
                )
            if not field:  # null, or "" where the settings format has no null (TOML)
                mapping.pop(column, None)
            elif field not in ITEM_FIELDS:
                raise SetupError(
                    f"catalog_postgres.columns maps {column!r} to {field!r}, which is not an item field "
                    f"(fields: {', '.join(ITEM_FIELDS)})"
                )
            else:
                mapping[column] = field
        taken: dict[str, str] = {}
        for column, field in mapping.items():
            if field in taken:
                raise SetupError(
                    f"item field {field!r} is mapped from two columns of {table}: {taken[field]!r} and "
                    f"{column!r}; map one of them elsewhere or to null in catalog_postgres.columns"
                )
            taken[field] = column
        if "item_id" not in taken:
            raise SetupError(
                f"no column of {table} maps to item_id (columns: {', '.join(columns)}); name one in "
                'catalog_postgres.columns, e.g. columns = { id = "item_id" }'
            )
        self.table = table
        self.fields = mapping
        self.id_column = taken["item_id"]

    def item(self, row: Mapping[str, Any], previous: Callable[[str], Mapping[str, Any] | None]) -> ItemIn:
        """The item of ``row`` (column -> value); unchanged TOAST values are taken from ``previous(id)``.

        Raises ``ValueError`` (a pydantic ``ValidationError`` included) when the row is not a valid item.
        """
        item_id = _id(row.get(self.id_column))
        data: dict[str, Any] = {}
        before: Mapping[str, Any] | None = None
        for column, field in self.fields.items():
            value = row.get(column)
            if value is UNCHANGED:
                if before is None:
                    before = previous(item_id) or {}
                value = before.get(field)
            value = _coerce(field, value)
            if value is not None:
                data[field] = value
        data["item_id"] = item_id
        return ItemIn.model_validate(data)

    def item_id(self, row: Mapping[str, Any]) -> str:
        return _id(row.get(self.id_column))


def _id(value: Any) -> str:
    if value is None or value is UNCHANGED:
        raise ValueError("the item id column is null")
    return value if isinstance(value, str) else str(value)


def _coerce(field: str, value: Any) -> Any:
    """A loaded column value as the item field expects it (strict validation follows)."""
    if value is None:
        return None
    if field in _TEXT_FIELDS and not isinstance(value, str):
        return str(value)
    if field == "price" and isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    if field == "tags" and isinstance(value, list):
        return [v if isinstance(v, str) else str(v) for v in value if v is not None]
    if field == "embedding" and isinstance(value, list):
        return [float(v) for v in value]
    return value
