"""Co-visit ingestion on the DataSQRL clickstream, checked against the example's query in DuckDB.

    python bench/covisit.py [--path ../shared/data/datasqrl-clickstream/clickstream.json.gz]

Feeds the 19,855 clicks into an event-clock engine (every view, no embeddings) in time order and fully
shuffled, prints events/s and whether the ``co_visits`` view equals DuckDB's self-join.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import duckdb

from freshrec.config import load_settings
from freshrec.datasets.files import read_records
from freshrec.engine import Engine

DEFAULT = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "datasqrl-clickstream" / "clickstream.json.gz"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, default=DEFAULT)
    args = parser.parse_args()
    clicks = [record for _, record in read_records(args.path)]
    con = duckdb.connect()
    con.execute("CREATE TABLE c AS SELECT * FROM read_json_auto(?)", [str(args.path)])
    reference = {
        (before, after): n
        for before, after, n in con.execute(
            """SELECT b.url, a.url, count(*) FROM c b JOIN c a ON a.userid = b.userid
               AND b.event_time < a.event_time AND b.event_time >= a.event_time - INTERVAL 10 MINUTE
               GROUP BY 1, 2"""
        ).fetchall()
    }
    results = {}
    for order in ("time", "shuffled"):
        events = list(clicks)
        if order == "shuffled":
            random.Random(5).shuffle(events)
        settings = load_settings(
            clock="event", embeddings={"model": "none"}, views={"co_visit_allowed_lateness_seconds": 7200}
        )
        engine = Engine(settings)
        started = time.perf_counter()
        for start in range(0, len(events), 1000):
            engine.ingest(events[start : start + 1000])
        seconds = time.perf_counter() - started
        got = {(r["before_item"], r["after_item"]): r["frequency"] for r in engine.view_rows("co_visits")}
        results[order] = {
            "events_per_s": round(len(events) / seconds),
            "pairs": len(got),
            "equals_duckdb": got == reference,
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
