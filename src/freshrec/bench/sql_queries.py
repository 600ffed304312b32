"""The SQL a team would run per request over its raw ``events`` and ``items`` tables (SPEC §3, §4).

One query per strategy, written from the specification's definitions and freshrec's defaults (read from
the same ``Settings``), for DuckDB and PostgreSQL alike. Each takes the parameters ``user``, ``k`` and (when
it has windows) ``now``, and returns ``(item_id, score)`` rows in result order:

- ``now`` is what the application passes: the wall clock in production; here freshrec's clock under
  ``clock = "event"``, the largest event timestamp (read once: ``MAX(ts)`` is a full scan in DuckDB);
- candidates are every in-stock catalog item the user has not purchased, zero scores included;
- scores are rounded to 9 decimals, as the engine rounds them, and ties go to lifetime weighted popularity
  (``item_popularity``) desc, then ``item_id`` asc. Popularity is summed only where it decides: for the
  finalists (the items whose score reaches the k-th best one) that share their score with another.

An event's own ``category``, ``brand`` and ``price`` override the catalog's for the user's profile (SPEC §1).
Items that events mention but the ``items`` table lacks are never recommended here (freshrec can recommend
them with the attributes the events carried).
"""

from __future__ import annotations

from dataclasses import dataclass

from freshrec.config import Settings


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    placeholder: str  # str.format pattern of a named parameter

    def param(self, name: str) -> str:
        return self.placeholder.format(name)


DUCKDB = Dialect("duckdb", "${}")
POSTGRES = Dialect("postgres", "%({})s")

ITEM_COLUMNS = ("item_id", "title", "category", "subcategory", "brand", "price", "in_stock")
EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "event_type",
    "ts",
    "session_id",
    "dwell_seconds",
    "category",
    "brand",
    "price",
)

SCHEMA = (
    """CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    title TEXT,
    category TEXT,
    subcategory TEXT,
    brand TEXT,
    price FLOAT8,
    in_stock BOOLEAN NOT NULL
)""",
    # ts: unix seconds; category, brand, price: the item as the event describes it, when it does
    """CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ts FLOAT8 NOT NULL,
    session_id TEXT,
    dwell_seconds FLOAT8,
    category TEXT,
    brand TEXT,
    price FLOAT8
)""",
)

# Created after the bulk load: a user's events, an item's events (popularity), recent events, a category.
INDEXES = (
    "CREATE INDEX events_user_ts ON events (user_id, ts)",
    "CREATE INDEX events_item_type ON events (item_id, event_type)",
    "CREATE INDEX events_ts ON events (ts)",
    "CREATE INDEX items_category ON items (category)",
)
# DuckDB scans a table through an index only for a selective filter on one indexed column (else its zone
# maps do, and the events arrive in time order): a user's events.
DUCKDB_INDEXES = ("CREATE INDEX events_user ON events (user_id)",)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _num(value: float) -> str:
    return f"CAST({float(value)!r} AS FLOAT8)"


class Queries:
    """The per-request queries of one dialect, for the weights, windows and tiers of ``settings``."""

    def __init__(self, settings: Settings, dialect: Dialect) -> None:
        self.settings = settings
        self.dialect = dialect

    def weight(self, alias: str) -> str:
        """The event's weight (SPEC §1 defaults: view 1, click 3, ...)."""
        cases = " ".join(
            f"WHEN {_text(kind)} THEN {_num(w)}" for kind, w in self.settings.events.weights.items()
        )
        return f"CASE {alias}.event_type {cases} END"

    def tier(self, price: str) -> str:
        """The price tier of ``price``: ``budget < 25 <= mid-range < 100 <= premium < 500 <= luxury``."""
        t = self.settings.price_tiers
        cases = " ".join(
            f"WHEN {price} < {_num(bound)} THEN {_text(name)}"
            for bound, name in zip(t.bounds, t.names, strict=False)
        )
        return f"CASE WHEN {price} IS NULL THEN NULL {cases} ELSE {_text(t.names[-1])} END"

    def _profile(self) -> str:
        """CTEs: the user's events with their attributes, the three personalized parts, the purchases."""
        s = self.settings.strategies
        return f"""user_events AS (
    SELECT e.item_id, e.event_type, e.ts, {self.weight("e")} AS weight,
        COALESCE(e.category, i.category) AS category,
        COALESCE(e.brand, i.brand) AS brand,
        {self.tier("COALESCE(e.price, i.price)")} AS tier
    FROM events e LEFT JOIN items i ON i.item_id = e.item_id
    WHERE e.user_id = {self.dialect.param("user")}
),
category_part AS (
    SELECT category, {_num(s.personalized_category_weight)} * SUM(weight) AS part
    FROM user_events WHERE category IS NOT NULL GROUP BY category
),
brand_part AS (
    SELECT brand, {_num(s.personalized_brand_weight)} * SUM(weight) AS part
    FROM user_events WHERE brand IS NOT NULL GROUP BY brand
),
tier_part AS (
    -- conversion rate = purchases / views; none (so 0) when the user saw nothing of the tier
    SELECT tier, {_num(s.personalized_conversion_weight)} * (
        CAST(COUNT(*) FILTER (WHERE event_type = 'purchase') AS FLOAT8)
        / COUNT(*) FILTER (WHERE event_type = 'view')) AS part
    FROM user_events WHERE tier IS NOT NULL GROUP BY tier
    HAVING COUNT(*) FILTER (WHERE event_type = 'view') > 0
),
purchased AS (SELECT DISTINCT item_id FROM user_events WHERE event_type = 'purchase')"""

    def _candidates(self, score: str, joins: str = "") -> str:
        """CTE ``scored``: every in-stock item the user did not purchase, with its (rounded) score."""
        return f"""scored AS (
    SELECT i.item_id, {self._round(score)} AS score
    FROM items i
    LEFT JOIN category_part c ON c.category = i.category
    LEFT JOIN brand_part b ON b.brand = i.brand
    LEFT JOIN tier_part t ON t.tier = {self.tier("i.price")}{joins}
    WHERE i.in_stock AND NOT EXISTS (SELECT 1 FROM purchased p WHERE p.item_id = i.item_id)
)"""

    @staticmethod
    def _round(score: str) -> str:
        # to 9 decimals in float arithmetic, as the engine rounds (NUMERIC rounding costs ~1 µs a row)
        return f"ROUND(({score}) * CAST(1e9 AS FLOAT8)) / CAST(1e9 AS FLOAT8)"

    def _top_k(self, score: str = "f.score", all_popular: str = "FALSE") -> str:
        """The top k of ``scored`` by score desc, lifetime popularity desc, item_id asc.

        Popularity only orders items of equal score, so it is summed only for finalists that share their
        score with another one (or for all when ``all_popular`` holds).
        """
        k = self.dialect.param("k")
        return f"""cutoff AS (
    SELECT MIN(score) AS score FROM (SELECT score FROM scored ORDER BY score DESC LIMIT {k}) top
),
finalists AS (SELECT s.item_id, s.score FROM scored s, cutoff WHERE s.score >= cutoff.score),
tied AS (
    SELECT item_id FROM finalists
    WHERE {all_popular} OR score IN (SELECT score FROM finalists GROUP BY score HAVING COUNT(*) > 1)
),
popularity AS (
    SELECT e.item_id, SUM({self.weight("e")}) AS popularity
    FROM events e WHERE e.item_id IN (SELECT item_id FROM tied) GROUP BY e.item_id
)
SELECT f.item_id, {score} AS score
FROM finalists f LEFT JOIN popularity p ON p.item_id = f.item_id
ORDER BY f.score DESC, COALESCE(p.popularity, 0) DESC, f.item_id
LIMIT {k}"""

    def personalized(self) -> str:
        """0.4·affinity(category) + 0.3·brand affinity + 0.3·100·conversion rate(price tier)."""
        return f"""WITH {self._profile()},
{self._candidates("COALESCE(c.part, 0) + COALESCE(b.part, 0) + COALESCE(t.part, 0)")},
{self._top_k()}"""

    def session(self) -> str:
        """0.4·personalized + 0.6·the user's events in the item's category, 1-h windows ending ≥ now − 3 h."""
        s = self.settings.strategies
        v = self.settings.views
        size, horizon = _num(v.activity_window_seconds), _num(v.activity_horizon_seconds)
        now = self.dialect.param("now")
        personalized = "COALESCE(c.part, 0) + COALESCE(b.part, 0) + COALESCE(t.part, 0)"
        score = (
            f"{_num(s.session_personalized_weight)} * ({personalized})"
            f" + {_num(s.session_recent_weight)} * COALESCE(r.interactions, 0)"
        )
        return f"""WITH {self._profile()},
recent AS (
    -- epoch-aligned 1-h windows; window_end = FLOOR(ts / size) * size + size
    SELECT category, COUNT(*) AS interactions
    FROM user_events
    WHERE category IS NOT NULL AND FLOOR(ts / {size}) * {size} + {size} >= {now} - {horizon}
    GROUP BY category
),
{self._candidates(score, chr(10) + "    LEFT JOIN recent r ON r.category = i.category")},
{self._top_k()}"""

    def trending(self) -> str:
        """The current 2-h window's score (views + 2·clicks + 3·unique users); popularity if it is empty."""
        v = self.settings.views
        size, slide = _num(v.trending_window_seconds), _num(v.trending_slide_seconds)
        now = self.dialect.param("now")
        score = (
            f"{_num(v.trending_view_weight)} * SUM(views) + {_num(v.trending_click_weight)} * SUM(clicks)"
            f" + {_num(v.trending_unique_user_weight)} * COUNT(*)"
        )
        # With an empty current window every candidate scores 0 and all are finalists: the order is then
        # popularity's, and the score shown is the popularity (the fallback of SPEC §4).
        fallback = "CASE WHEN (SELECT empty FROM fallback) THEN COALESCE(p.popularity, 0) ELSE f.score END"
        return f"""WITH current_window AS (
    -- the hopping window that ends at the first slide boundary after now
    SELECT FLOOR({now} / {slide}) * {slide} + {slide} - {size} AS start
),
item_users AS (
    -- one row per (item, user) of the window: unique users are a count, without a distinct sort
    SELECT e.item_id,
        COUNT(*) FILTER (WHERE e.event_type = 'view') AS views,
        COUNT(*) FILTER (WHERE e.event_type = 'click') AS clicks
    FROM events e, current_window w
    WHERE e.ts >= w.start
    GROUP BY e.item_id, e.user_id
),
trend AS (SELECT item_id, {self._round(score)} AS score FROM item_users GROUP BY item_id),
fallback AS (SELECT NOT EXISTS (SELECT 1 FROM trend) AS empty),
user_events AS MATERIALIZED (  -- alone, so that DuckDB reads it through the user_id index
    SELECT item_id, event_type FROM events WHERE user_id = {self.dialect.param("user")}
),
purchased AS (SELECT item_id FROM user_events WHERE event_type = 'purchase'),
scored AS (
    SELECT i.item_id, COALESCE(t.score, 0) AS score
    FROM items i LEFT JOIN trend t ON t.item_id = i.item_id
    WHERE i.in_stock AND NOT EXISTS (SELECT 1 FROM purchased p WHERE p.item_id = i.item_id)
),
{self._top_k(fallback, "(SELECT empty FROM fallback)")}"""

    def all(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """``strategy -> (sql, names of its parameters)``."""
        return {
            "personalized": (self.personalized(), ("user", "k")),
            "session": (self.session(), ("user", "k", "now")),
            "trending": (self.trending(), ("user", "k", "now")),
        }
