"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

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
        self.log_bytes = Gauge("freshrec_log_bytes", "Bytes in the durable log.", registry=self.registry)
