"""What the dashboard shows live, computed from the running server: one snapshot at most twice a second.

Every open dashboard shares the same :class:`Pulse`, so a hundred open tabs cost what one does. Rates are
measured between samples of the engine's applied-event counter; the write-to-visible time is read from the
latency histogram of ``POST /v1/events``, whose ``202`` is sent once the events are durable *and applied*
(embedded mode), so it is the time until a posted event changes the answers.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from freshrec.engine import USER_STRATEGIES

if TYPE_CHECKING:
    from freshrec.api.app import Runtime

EVENTS_ROUTE = ("POST", "/v1/events", "202")
RATE_SPAN = 5.0  # seconds of samples the events/s figure is measured over
HISTORY = 90  # samples kept for the sparkline (one per second or so)


class Pulse:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.samples: deque[tuple[float, int]] = deque(maxlen=HISTORY)
        self.rates: deque[float] = deque(maxlen=HISTORY)
        self.buckets: deque[tuple[float, list[tuple[float, float]]]] = deque(maxlen=20)
        self.last_change: float | None = None
        self.cached: dict[str, Any] | None = None
        self.cached_at = 0.0

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        if self.cached is not None and now - self.cached_at < 0.5:
            return self.cached
        engine = self.runtime.engine
        applied = engine.total_applied()[0]
        if not self.samples or self.samples[-1][1] != applied:
            self.last_change = time.time() if self.samples else None
        self.samples.append((now, applied))
        rate = self._rate(now)
        self.rates.append(rate)
        self.buckets.append((now, self._event_buckets()))
        stats = engine.stats()
        body = {
            "at": time.time(),
            "mode": self.runtime.status().get("mode", "embedded"),
            "ingest": {
                "events_per_second": rate,
                "history": list(self.rates),
                "applied_events": applied,
                "duplicate_events": stats.get("duplicate_events", 0),
                "last_event_applied_seconds_ago": None
                if self.last_change is None
                else max(0.0, time.time() - self.last_change),
                "write_to_visible_ms": self._write_to_visible(),
                "engine_now": stats.get("now"),
            },
            "state": {
                "users": stats.get("users"),
                "items": stats.get("items"),
                "log_bytes": None if self.runtime.datadir is None else self.runtime.datadir.log.size_bytes(),
                "rss_bytes": _rss_bytes(),
                **engine.experiments.stats(),
            },
            "cf": self._cf(),
            "trending": self._trending(),
            "experiments": self._experiments(),
            "strategies": [s for s in (*USER_STRATEGIES, "cf", "similar_content") if s in engine.strategies],
        }
        self.cached, self.cached_at = body, now
        return body

    def _rate(self, now: float) -> float:
        first = next((s for s in self.samples if now - s[0] <= RATE_SPAN), self.samples[-1])
        last = self.samples[-1]
        span = last[0] - first[0]
        return (last[1] - first[1]) / span if span > 0 else 0.0

    def _event_buckets(self) -> list[tuple[float, float]]:
        """Cumulative (upper bound, count) of the events route's latency histogram."""
        out = []
        for metric in self.runtime.metrics.requests.collect():
            for sample in metric.samples:
                labels = sample.labels
                if (
                    sample.name.endswith("_bucket")
                    and (
                        labels.get("method"),
                        labels.get("route"),
                        labels.get("status"),
                    )
                    == EVENTS_ROUTE
                ):
                    out.append((float(labels["le"]), float(sample.value)))
        return sorted(out)

    def _write_to_visible(self) -> dict[str, float | None]:
        """Median and 99th percentile (bucket upper bounds, ms) of event writes in the last ~20 samples."""
        if len(self.buckets) < 2:
            return {"p50": None, "p99": None}
        old = dict(self.buckets[0][1])
        new = self.buckets[-1][1]
        delta = [(le, count - old.get(le, 0.0)) for le, count in new]
        total = delta[-1][1] if delta else 0.0
        if total <= 0:
            return {"p50": None, "p99": None}

        def quantile(q: float) -> float | None:
            for le, count in delta:
                if count >= q * total:
                    return None if le == float("inf") else le * 1000
            return None

        return {"p50": quantile(0.5), "p99": quantile(0.99)}

    def _cf(self) -> dict[str, Any]:
        cf = self.runtime.engine.cf
        model = cf.model
        return {
            "enabled": cf.settings.enabled,
            "training": cf.training,
            "version": None if model is None else model.info.version,
            "age_seconds": None if model is None else max(0.0, time.time() - model.info.trained_at),
            "events": None if model is None else model.info.events,
            "users": None if model is None else model.info.users,
        }

    def _trending(self) -> list[dict[str, Any]]:
        """The current window's trending items grouped by category (the six busiest, four items each)."""
        engine = self.runtime.engine
        answer = engine.trending(k=60)
        groups: dict[str, list[dict[str, Any]]] = {}
        for entry in answer["items"]:
            item = engine.catalog.items.get(entry["item_id"])
            category = (item.category if item is not None else None) or "uncategorised"
            title = item.title if item is not None else None
            shown = groups.setdefault(category, [])
            if len(shown) < 4:
                shown.append({"item_id": entry["item_id"], "title": title, "score": entry["score"]})
        ordered = sorted(groups.items(), key=lambda kv: -sum(i["score"] for i in kv[1]))
        return [{"category": c, "items": items} for c, items in ordered[:6]]

    def _experiments(self) -> list[dict[str, Any]]:
        registry = self.runtime.engine.experiments
        declared = sorted(registry.declared.values(), key=lambda e: (not e.active, -e.updated_at))
        return [registry.results(e.experiment_id) for e in declared[:4]]


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
