"""Re-sending historical events is a no-op, however old their timestamps (ids age by arrival)."""

from __future__ import annotations

from freshrec.config import load_settings
from freshrec.engine import Engine

DAY = 86_400.0


def test_resending_months_of_history_counts_nothing_twice() -> None:
    engine = Engine(load_settings(clock="event", embeddings={"model": "none"}))
    history = [
        {
            "event_id": f"e{n}",
            "user_id": f"u{n % 7}",
            "item_id": f"i{n % 13}",
            "type": "view",
            "timestamp": 1_000_000_000 + n * DAY / 2,  # 200 days of history
        }
        for n in range(400)
    ]
    first = engine.ingest(history)
    assert first.applied == 400
    rows = engine.view_rows("item_popularity")
    again = engine.ingest(history)
    assert again.applied == 0
    assert engine.duplicate_events == 400
    assert engine.view_rows("item_popularity") == rows
