"""`GET /metrics` in the Prometheus text format: requests by route and status, their latency,
the version served and how old its build is. One registry per app (prometheus_client, which
Prefect already installs); a route is labelled by its template (``/api/items/{item_id}``),
never by the path a client sent, so the label set stays small."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ace_index.storage.store import StoreError, open_store

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    def __init__(self, store: str):
        self.store, self.created = store, {}
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ace_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "ace_request_seconds",
            "time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.served = Gauge(
            "ace_version_served", "1 for the version served", ["version"], registry=self.registry
        )
        self.age = Gauge(
            "ace_build_age_seconds",
            "seconds since the served version was published",
            registry=self.registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self, version: str | None) -> tuple[bytes, str]:
        """The metrics now (``version``: the one served, None before one is loaded)."""
        self.served.clear()
        if version is not None:
            self.served.labels(version).set(1)
            created = self._created(version)
            if created is not None:
                self.age.set(time.time() - created)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _created(self, version: str) -> float | None:
        if version not in self.created:
            try:
                stamp = open_store(self.store).manifest(version).get("created_at")
            except StoreError:
                return None
            self.created[version] = _epoch(stamp) if stamp else None
        return self.created[version]


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of a manifest's ``created_at`` ("2026-12-06T18:36:22Z")."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def route_of(scope: dict) -> str:
    """The route template a request matched, or "other" (404s, the docs' assets)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "other"
