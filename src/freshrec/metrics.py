"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_accepted = Counter(
            "freshrec_events_accepted", "Events acknowledged (202).", registry=self.registry
        )
        self.events_applied = Counter(
            "freshrec_events_applied", "Events applied to the views (new event_ids).", registry=self.registry
        )
        self.events_rejected = Counter(
            "freshrec_events_rejected_requests", "Event requests rejected as invalid.", registry=self.registry
        )
        self.requests = Histogram(
            "freshrec_request_seconds",
            "Request latency by route and status.",
            ["method", "route", "status"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.items = Gauge("freshrec_catalog_items", "Items in the catalog.", registry=self.registry)
        self.users = Gauge("freshrec_users", "Users with state.", registry=self.registry)
        self.users_evicted = Counter(
            "freshrec_users_evicted",
            "Users forgotten by retention (ttl, max_users, memory) or on request.",
            ["reason"],
            registry=self.registry,
        )
        self.state_bytes = Gauge(
            "freshrec_state_bytes",
            "Bytes of the entries the embedded views hold (what retention.memory_budget_mb bounds).",
            registry=self.registry,
        )
        self._evicted_seen: dict[str, int] = {}
        self.log_bytes = Gauge("freshrec_log_bytes", "Bytes in the durable log.", registry=self.registry)
        self.ranker_version = Gauge(
            "freshrec_ranker_version",
            "Version of the hybrid ranker serving (0: none).",
            registry=self.registry,
        )
        self.ranker_age = Gauge(
            "freshrec_ranker_age_seconds",
            "Seconds since the serving ranker was trained.",
            registry=self.registry,
        )
        self.ranker_offline = Gauge(
            "freshrec_ranker_offline",
            "Held-out metrics of the serving ranker (and of the best single source on the same points).",
            ["metric", "model"],
            registry=self.registry,
        )

    def observe_state(self, stats: dict[str, Any]) -> None:
        """Publish users held, state bytes and evictions from the engine's ``stats()``."""
        self.users.set(stats.get("users", 0))
        if "state_bytes" in stats:
            self.state_bytes.set(stats["state_bytes"])
        for reason, count in stats.get("users_evicted", {}).items():
            seen = self._evicted_seen.get(reason, 0)
            self.users_evicted.labels(reason).inc(max(count - seen, 0))
            self._evicted_seen[reason] = max(count, seen)

    def observe_ranker(self, info: dict[str, Any] | None) -> None:
        """Publish the serving ranker's version, age and offline metrics (``RankerInfo.to_json``)."""
        if info is None:
            self.ranker_version.set(0)
            return
        self.ranker_version.set(info["version"])
        self.ranker_age.set(info["age_seconds"])
        metrics = info.get("metrics", {})
        best = metrics.get("best_source_metrics", {})
        for name in ("hr@10", "ndcg@10"):
            if name in metrics:
                self.ranker_offline.labels(name, "ranker").set(metrics[name])
            if name in best:
                self.ranker_offline.labels(name, "best_source").set(best[name])
