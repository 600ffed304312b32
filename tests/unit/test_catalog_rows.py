"""Table rows as catalog items: the column mapping, its set-up errors, and the value conversions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from freshrec.integrations.catalog_rows import ItemMapping
from freshrec.integrations.pgoutput import UNCHANGED
from freshrec.integrations.postgres import SetupError

COLUMNS = ["id", "name", "category", "price", "tags", "in_stock", "note", "title"]


def test_same_named_columns_map_and_configured_ones_rename_or_drop() -> None:
    mapping = ItemMapping("public.items", COLUMNS, {"id": "item_id", "name": "title", "title": None})
    assert mapping.fields == {
        "id": "item_id",
        "name": "title",
        "category": "category",
        "price": "price",
        "tags": "tags",
        "in_stock": "in_stock",
    }
    row = {"id": 42, "name": "Tent", "category": "outdoor", "price": Decimal("250.50"), "tags": ["a", 3]}
    item = mapping.item({**row, "in_stock": None, "note": "x", "title": "ignored"}, lambda _: None)
    assert item.item_id == "42"
    assert (item.title, item.price, item.tags, item.in_stock) == ("Tent", 250.5, ["a", "3"], True)


def test_unchanged_values_come_from_the_previous_version() -> None:
    mapping = ItemMapping("public.items", ["item_id", "text", "price"], {})
    asked: list[str] = []

    def previous(item_id: str) -> dict[str, object]:
        asked.append(item_id)
        return {"text": "a long description", "price": 3.0}

    item = mapping.item({"item_id": "a", "text": UNCHANGED, "price": Decimal(5)}, previous)
    assert (item.text, item.price, asked) == ("a long description", 5.0, ["a"])


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ({}, "no column of public.items maps to item_id"),
        ({"sku": "item_id"}, "names column 'sku', which public.items does not have"),
        ({"id": "identifier"}, "maps 'id' to 'identifier', which is not an item field"),
        ({"id": "item_id", "name": "title"}, "item field 'title' is mapped from two columns"),
        ({"id": "item_id", "note": ""}, None),
    ],
)
def test_mapping_errors_say_what_to_change(configured: dict[str, str | None], message: str | None) -> None:
    if message is None:
        assert "note" not in ItemMapping("public.items", COLUMNS, configured).fields
        return
    with pytest.raises(SetupError, match=message):
        ItemMapping("public.items", COLUMNS, configured)


def test_invalid_rows_raise_value_errors() -> None:
    mapping = ItemMapping("public.items", ["item_id", "price"], {})
    with pytest.raises(ValidationError):
        mapping.item({"item_id": "a", "price": Decimal(-1)}, lambda _: None)
    with pytest.raises(ValueError, match="item id column is null"):
        mapping.item({"item_id": None, "price": None}, lambda _: None)
