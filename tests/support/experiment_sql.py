"""The attribution rules of docs/experiments.md in DuckDB SQL, over exposures and events in log order.

An event of a counted type credits the exposure its ``request_id`` names, or else the user's latest
exposure showing the item, when the exposure was logged before the event (``seq``) and the event's time is
inside the exposure's window; each (exposure, item, type) counts once. The tables are NDJSON files:
``exposures`` (request_id, variant, user_id, shown_at, seq), ``shown`` (request_id, item_id), ``events``
(seq, idx, user_id, item_id, type, ts, request_id, price) and ``items`` (seq, item_id, price).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson


def write_tables(
    out: Path,
    exposures: Sequence[Mapping[str, Any]],
    shown: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> None:
    for name, rows in (("exposures", exposures), ("shown", shown), ("events", events), ("items", items)):
        (out / f"{name}.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")


def duckdb_results(tables: Path, window: float) -> dict[str, dict[str, Any]]:
    """Per variant: users, exposures, clicked exposures, clicks, converted, purchases, revenue."""
    con = duckdb.connect()
    for name, columns in {
        "exposures": "{request_id: 'VARCHAR', variant: 'VARCHAR', user_id: 'VARCHAR', shown_at: 'DOUBLE', "
        "seq: 'BIGINT'}",
        "shown": "{request_id: 'VARCHAR', item_id: 'VARCHAR'}",
        "events": "{seq: 'BIGINT', idx: 'BIGINT', user_id: 'VARCHAR', item_id: 'VARCHAR', type: 'VARCHAR', "
        "ts: 'DOUBLE', request_id: 'VARCHAR', price: 'DOUBLE'}",
        "items": "{seq: 'BIGINT', item_id: 'VARCHAR', price: 'DOUBLE'}",
    }.items():
        con.execute(
            f"CREATE TABLE {name} AS SELECT * FROM read_json('{tables / name}.ndjson', columns={columns})"
        )
    rows = con.execute(
        f"""
        WITH candidates AS (
            SELECT e.seq AS eseq, e.idx, e.type, e.item_id, e.request_id IS NOT NULL AS named,
                   e.price AS eprice, x.request_id, x.variant, x.shown_at, x.seq
            FROM events e
            JOIN exposures x ON x.user_id = e.user_id AND x.seq < e.seq
                AND e.ts BETWEEN x.shown_at AND x.shown_at + {window}
                AND (e.request_id IS NULL OR e.request_id = x.request_id)
            JOIN shown s ON s.request_id = x.request_id AND s.item_id = e.item_id
            WHERE e.type IN ('click', 'add_to_cart', 'purchase')
        ),
        credited AS (
            SELECT * FROM candidates
            QUALIFY named OR row_number() OVER (PARTITION BY eseq, idx ORDER BY shown_at DESC, seq DESC) = 1
        ),
        once AS (
            SELECT * FROM credited
            QUALIFY row_number() OVER (PARTITION BY request_id, item_id, type ORDER BY eseq, idx) = 1
        ),
        prices AS (SELECT item_id, arg_max(price, seq) AS price FROM items GROUP BY item_id),
        per_exposure AS (
            SELECT x.variant, x.user_id, x.request_id,
                   count(*) FILTER (o.type = 'click') AS clicks,
                   count(*) FILTER (o.type = 'purchase') AS purchases,
                   coalesce(sum(coalesce(o.eprice, p.price, 0)) FILTER (o.type = 'purchase'), 0) AS revenue
            FROM exposures x
            LEFT JOIN once o ON o.request_id = x.request_id
            LEFT JOIN prices p ON p.item_id = o.item_id
            GROUP BY ALL
        )
        SELECT variant, count(DISTINCT user_id), count(*), count(*) FILTER (clicks > 0), sum(clicks),
               count(*) FILTER (purchases > 0), sum(purchases), sum(revenue)
        FROM per_exposure GROUP BY variant
        """
    ).fetchall()
    keys = ("users", "exposures", "clicked_exposures", "clicks", "converted", "purchases", "revenue")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}
