"""Prometheus metrics of one gateway app, and the middleware that counts requests.

Labels are bounded: routes are handler names, never paths, keys or request ids. With several
uvicorn workers ``PROMETHEUS_MULTIPROC_DIR`` is set and ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import StoreUnavailable

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STORE_UNAVAILABLE = StoreUnavailable.error_type.encode()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The gateway's metric families, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests_total",
            "Requests answered, by route and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds",
            "Time to answer a request (to the first byte of streams).",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Requests being answered now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_duration_seconds",
            "Time fal took to answer, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Upstream calls that failed, by operation, kind and fal account (empty for calls "
            "that need no key: file transfers).",
            ["operation", "kind", "account"],
            registry=self.registry,
        )
        self.upstream_calls = Counter(
            "gateway_upstream_calls_total",
            "Calls to fal, by fal account and operation.",
            ["account", "operation"],
            registry=self.registry,
        )
        self.account_in_flight = Gauge(
            "gateway_upstream_account_jobs_in_flight",
            "Jobs holding a slot on each fal account of the pool.",
            ["account"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.account_state = Gauge(
            "gateway_upstream_account_state",
            "1 for the state each fal account of the pool is in (active, cooling, disabled).",
            ["account", "state"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.accounts_usable = Gauge(
            "gateway_upstream_accounts_usable",
            "fal accounts that may take new jobs; 0 means every submit fails (alert on it).",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

        self.redis_errors = Counter(
            "gateway_redis_errors_total",
            "Redis could not serve: requests answered 503 for it (source request) and "
            "background loop passes that failed on it (source: the loop).",
            ["source"],
            registry=self.registry,
        )
        self.redis_seconds = Histogram(
            "gateway_redis_duration_seconds",
            "Time Redis took for the gateway's scripts and commands, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.admissions = Counter(
            "gateway_admissions_total",
            "Submits admitted or refused, by outcome (admitted or the refusal reason).",
            ["outcome"],
            registry=self.registry,
        )
        self.settlements = Counter(
            "gateway_settlements_total",
            "Reservations settled, by outcome (charged, failed, refused, cancelled, lost, ...).",
            ["outcome"],
            registry=self.registry,
        )
        self.settled_cost = Counter(
            "gateway_settled_cost_micros_total",
            "Cost charged to teams on settlement, in micro-units, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.settlement_overrun = Counter(
            "gateway_settlement_overrun_micros_total",
            "Cost above the reservation that was not charged to teams, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.reservations_outstanding = Gauge(
            "gateway_reservations_outstanding",
            "Reservations not settled yet, as last counted by the reconciler.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.oldest_reservation_age = Gauge(
            "gateway_reservations_oldest_age_seconds",
            "Age of the oldest reservation not settled yet (0: none), as last counted by the "
            "reconciler; a job normally settles within seconds of its end.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.cap_warnings = Counter(
            "gateway_team_cap_warnings_total",
            "Admissions that took a team's spend past GATEWAY_CAP_WARNING_RATIO of its daily or "
            "monthly cap, by cap (and team, only with GATEWAY_METRICS_TEAM_LABEL: unbounded).",
            ["cap", "team"],
            registry=self.registry,
        )
        self.reserved_micros = Gauge(
            "gateway_reserved_micros",
            "Credit held by open reservations, as last counted by the reconciler.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

        self.deliveries = Counter(
            "gateway_webhook_deliveries_total",
            "Webhook delivery attempts to callers, by outcome (delivered, retry, dead).",
            ["outcome"],
            registry=self.registry,
        )
        self.delivery_attempts = Counter(
            "gateway_webhook_delivery_attempts_total",
            "Webhook delivery attempts to callers.",
            registry=self.registry,
        )
        self.delivery_queue = Gauge(
            "gateway_webhook_queue_depth",
            "Deliveries queued or waiting for a retry (not delivered or dead-lettered yet).",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.oldest_delivery_age = Gauge(
            "gateway_webhook_oldest_pending_seconds",
            "Age of the oldest queued delivery attempt (a retry counts from when it fell due).",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.alerts = Counter(
            "gateway_alerts_total",
            "Alerts raised, by type (team.low_balance, team.near_cap, upstream.disabled, "
            "upstream.failing): one per crossing, whether or not a webhook receives it.",
            ["type"],
            registry=self.registry,
        )
        self.teams_low_balance = Gauge(
            "gateway_teams_low_balance",
            "Teams whose balance is below their low-balance threshold, as of the fleet's last "
            "audit (every process shows the same count).",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.background_last_success = Gauge(
            "gateway_background_last_success_timestamp_seconds",
            "When each background loop (reconciler, webhook delivery) last finished a pass.",
            ["loop"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.background_failures = Counter(
            "gateway_background_failures_total",
            "Background loop passes that failed (each is retried with backoff), by loop.",
            ["loop"],
            registry=self.registry,
        )
        self.status_answers = Counter(
            "gateway_status_answers_total",
            "Status polls answered, by source: state (the gateway knew the request had finished),"
            " upstream (a call to fal), shared (another poll's call to fal).",
            ["source"],
            registry=self.registry,
        )
        self.status_from_state = self.status_answers.labels("state")
        self.fal_webhooks = Counter(
            "gateway_fal_webhooks_total",
            "Webhooks received from fal, by outcome (accepted, duplicate, rejected, unknown).",
            ["outcome"],
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        """The text to answer ``/metrics`` with, and its content type."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by the name of the handler that answered it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children, looked up once: ``labels()`` costs more than the update itself.
        self._timers: dict[str, Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._timer(_route(scope)).observe(time.perf_counter() - started)
                if status == 503 and _store_unavailable(message):
                    self.metrics.redis_errors.labels("request").inc()
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.in_flight.dec()
            self._counter(_route(scope), scope["method"], status).inc()

    def _timer(self, route: str) -> Any:
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.metrics.request_seconds.labels(route)
        return timer

    def _counter(self, route: str, method: str, status: int) -> Any:
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.requests.labels(route, method, str(status))
        return counter


def _store_unavailable(start: Message) -> bool:
    """A 503 answered because Redis could not serve (``StoreUnavailable``'s error type)."""
    return (b"x-fal-error-type", STORE_UNAVAILABLE) in start.get("headers", ())


def _route(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    return getattr(endpoint, "__name__", "unmatched")
