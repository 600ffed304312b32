"""The PostgreSQL tables the feature sink writes: one per view, primary key = the view's key.

Columns are the view's row fields as ``GET /v1/views/{view}`` returns them (times as epoch seconds in
``double precision``, counts ``bigint``, ids and names ``text``), plus ``as_of``: the engine's "now" when
the row was read (``decayed_affinity`` is the value at that instant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from freshrec.config import Settings
from freshrec.integrations.postgres import SetupError, sql

FLOAT = "double precision"
INT = "bigint"
TEXT = "text"


@dataclass(frozen=True, slots=True)
class FeatureTable:
    view: str
    keyed_by: str  # the column holding the view's key (a user or an item)
    key: tuple[str, ...]  # primary key
    columns: tuple[tuple[str, str], ...]  # every column but as_of, in order, with its type

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def values(self) -> list[str]:
        return [name for name, _ in self.columns if name not in self.key]

    def ddl(self, table: sql.Composable) -> sql.Composed:
        parts: list[sql.Composable] = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(name), sql.SQL(kind), sql.SQL(" NOT NULL" if name in self.key else "")
            )
            for name, kind in self.columns
        ]
        parts.append(sql.SQL("as_of double precision NOT NULL"))
        parts.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.key))))
        return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table, sql.SQL(", ").join(parts))

    def row(self, values: dict[str, Any], as_of: float) -> tuple[Any, ...]:
        return (*(values[name] for name in self.names), as_of)


def feature_tables(settings: Settings) -> dict[str, FeatureTable]:
    """The views the sink can write (their rows change only by events of their key, and by time)."""
    counts = tuple((f"{t}_count", INT) for t in settings.events.weights)
    window = (("window_start", FLOAT), ("window_end", FLOAT))
    specs = [
        FeatureTable(
            "user_category_profile",
            "user_id",
            ("user_id", "category"),
            (
                ("user_id", TEXT),
                ("category", TEXT),
                ("affinity_score", FLOAT),
                ("decayed_affinity", FLOAT),
                ("unique_items_interacted", INT),
                ("last_engaged_at", FLOAT),
                *counts,
            ),
        ),
        FeatureTable(
            "user_category_affinity",
            "user_id",
            ("user_id", "category", "window_start"),
            (
                ("user_id", TEXT),
                ("category", TEXT),
                *window,
                ("views", INT),
                ("clicks", INT),
                ("shares", INT),
                ("saves", INT),
                ("total_dwell_seconds", FLOAT),
                ("avg_dwell_seconds", FLOAT),
                ("affinity_score", FLOAT),
            ),
        ),
        FeatureTable(
            "user_recent_activity",
            "user_id",
            ("user_id", "category", "window_start"),
            (("user_id", TEXT), ("category", TEXT), *window, ("recent_interactions", INT)),
        ),
        FeatureTable(
            "user_brand_profile",
            "user_id",
            ("user_id", "brand"),
            (
                ("user_id", TEXT),
                ("brand", TEXT),
                ("brand_affinity", FLOAT),
                ("purchase_count", INT),
                ("last_brand_interaction", FLOAT),
            ),
        ),
        FeatureTable(
            "user_price_sensitivity",
            "user_id",
            ("user_id", "price_tier"),
            (
                ("user_id", TEXT),
                ("price_tier", TEXT),
                ("views", INT),
                ("purchases", INT),
                ("conversion_rate", FLOAT),
            ),
        ),
        FeatureTable(
            "content_trending",
            "item_id",
            ("item_id", "window_start"),
            (
                ("item_id", TEXT),
                *window,
                ("recent_views", INT),
                ("recent_clicks", INT),
                ("unique_users", INT),
                ("avg_dwell", FLOAT),
                ("trending_score", FLOAT),
            ),
        ),
        FeatureTable(
            "item_popularity",
            "item_id",
            ("item_id",),
            (("item_id", TEXT), *counts, ("weighted_total", FLOAT)),
        ),
    ]
    return {spec.view: spec for spec in specs}


def chosen_tables(settings: Settings, views: list[str]) -> dict[str, FeatureTable]:
    """The tables of ``views``, or :class:`SetupError` naming the views the sink cannot write."""
    known = feature_tables(settings)
    unknown = [v for v in views if v not in known]
    if unknown:
        raise SetupError(
            f"feature_sink.views: {', '.join(unknown)} cannot be sunk (their rows change with events of "
            f"other keys); choose among {', '.join(known)}"
        )
    return {v: known[v] for v in views}
