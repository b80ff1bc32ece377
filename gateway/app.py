"""The gateway's ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from gateway.accounts.keys import KeyStore
from gateway.accounts.requests import RequestRegistry
from gateway.accounts.teams import TeamStore
from gateway.errors import StoreUnavailable, install_error_handlers
from gateway.http import (
    admin,
    admin_billing,
    admin_deliveries,
    admin_exports,
    admin_maintenance,
    admin_prices,
    admin_teams,
    admin_upstreams,
    console,
    console_routes,
    files,
    me,
    ops,
    page_errors,
    portal,
    portal_jobs,
    portal_playground,
    proxy,
    queue,
    storage,
    sync,
    webhooks,
)
from gateway.http.body_limit import BodySizeLimit
from gateway.http.fast_status import FastStatusPolls
from gateway.http.openapi import openapi_document
from gateway.http.services import Services
from gateway.jobs.finisher import Finisher
from gateway.jobs.input_probe import InputProbe
from gateway.jobs.reconciler import Reconciler
from gateway.jobs.status import JobStatus
from gateway.jobs.streams import StatusStreams
from gateway.jobs.submit import Submitter
from gateway.limits.admission import Admitter
from gateway.policy.cache import PolicyCache
from gateway.prices.cache import PriceCache
from gateway.prices.table import PriceTable
from gateway.relay.fal_signature import FalKeys
from gateway.relay.outbox import Outbox
from gateway.relay.targets import TargetPolicy
from gateway.relay.worker import DeliveryWorker
from gateway.settings import Settings
from gateway.store.pool import connect_redis, connect_store
from gateway.store.price_scripts import PriceScripts
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts
from gateway.telemetry.access_log import AccessLog
from gateway.telemetry.loops import Loop, Supervisor
from gateway.telemetry.metrics import Metrics, MetricsMiddleware
from gateway.telemetry.tracing import Tracing, TracingMiddleware
from gateway.upstream import FalUpstream
from gateway.upstream.links import Links
from gateway.upstream.pool import account_pool
from gateway.upstream.probe import AccountProbe
from gateway.upstream.statuses import StatusCoalescer


def _cors(settings: Settings) -> list[Middleware]:
    """Browser access (fal-js with ``proxyUrl``) from ``GATEWAY_CORS_ORIGINS``; keys and teams
    can narrow it further with the ``allowed_origins`` policy."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[
                "x-fal-request-id",
                "x-request-id",
                "x-fal-error-type",
                "retry-after",
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
                "x-gateway-estimated-cost-micros",
                "x-gateway-reserved-micros",
                "x-gateway-ignored-fields",
            ],
            max_age=600,
        )
    ]


async def _start_relay(outbox: Outbox) -> None:
    """Create the delivery consumer group; with Redis down, the worker retries by itself."""
    with contextlib.suppress(StoreUnavailable):
        await outbox.ensure_group()


def create_app(settings: Settings, tracing: Tracing | None = None) -> ASGIApp:
    """Build the gateway for ``settings``; connections open with the app's lifespan. Traced as
    the ``OTEL_*`` variables say, unless ``tracing`` is given."""
    metrics = Metrics()
    tracing = tracing or Tracing.from_environment()
    stall_after = max(settings.background_stall_after, 3 * settings.reconcile_interval)
    links = Links(
        settings.public_url,
        (settings.upstream_queue_url, settings.upstream_run_url, settings.upstream_rest_url),
        settings.media_hosts,
        settings.link_signing_key(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect_redis(settings)
        store = connect_store(settings)
        retention = Retention.of(settings)
        scripts = Scripts(store, metrics, retention, settings.alert_webhook_url)
        accounts = account_pool(settings, store, scripts, metrics)
        upstream = FalUpstream(settings, metrics, accounts, tracing)
        requests = RequestRegistry(store, settings.request_retention)
        teams = TeamStore(redis)
        finisher = Finisher(scripts, upstream, accounts, links, metrics, teams, tracing)
        keys = KeyStore(redis)
        policies = PolicyCache(store)
        price_cache = PriceCache(store)
        targets = TargetPolicy(settings.webhook_allow_http, settings.webhook_allowed_networks)
        probe = InputProbe(
            targets,
            links.is_upstream,
            settings.input_probe_timeout,
            settings.input_probe_max_bytes,
            settings.input_probe_max_connections,
            settings.input_probe_per_key,
        )
        jwks_client = httpx.AsyncClient(headers={"User-Agent": "fal-gateway/0.1"})
        outbox = Outbox(redis, retention)
        submitter = Submitter(
            settings,
            policies,
            Admitter(scripts, settings, metrics, price_cache),
            upstream,
            accounts,
            links,
            requests,
            finisher,
            targets,
            probe,
            teams,
            tracing,
        )
        statuses = StatusCoalescer(upstream, accounts, settings.status_coalesce_interval)
        job_status = JobStatus(statuses, finisher, links, metrics)
        reconciler = Reconciler(
            store, scripts, finisher, upstream, accounts, settings, metrics, tracing
        )
        probe_accounts = AccountProbe(accounts, upstream, store, settings)
        worker = DeliveryWorker(
            redis, store, scripts, keys, targets, outbox, settings, metrics, tracing
        )
        background = Supervisor(
            [
                Loop("reconciler", reconciler.sweep, settings.reconcile_interval, stall_after),
                Loop("webhook_delivery", worker.step, 0, stall_after),
                Loop(
                    "upstream_accounts",
                    accounts.refresh,
                    settings.upstream_refresh_interval,
                    stall_after,
                ),
                Loop(
                    "upstream_probe",
                    probe_accounts.step,
                    min(5.0, settings.upstream_probe_interval),
                    stall_after,
                ),
            ],
            metrics,
        )
        app.state.services = fast_status.services = Services(
            settings=settings,
            redis=redis,
            store=store,
            keys=keys,
            teams=teams,
            requests=requests,
            upstream=upstream,
            accounts=accounts,
            links=links,
            metrics=metrics,
            scripts=scripts,
            submitter=submitter,
            policies=policies,
            prices=PriceTable(PriceScripts(scripts, store), store, redis, price_cache),
            finisher=finisher,
            job_status=job_status,
            streams=StatusStreams(upstream, accounts, job_status, settings.max_streams_per_key),
            outbox=outbox,
            targets=targets,
            fal_keys=FalKeys(jwks_client, settings.fal_jwks_url),
            background=background,
            openapi=openapi_document(settings.public_url),
            tracing=tracing,
        )
        await _start_relay(outbox)
        await accounts.start()
        background.start()
        try:
            yield
        finally:
            await background.stop(settings.background_stop_timeout)
            await worker.aclose()
            await jwks_client.aclose()
            await probe.aclose()
            await finisher.close()
            await upstream.aclose()
            await redis.aclose()
            await store.aclose()
            await tracing.shutdown()

    app = Starlette(
        routes=[
            *queue.REQUEST_ROUTES,
            *ops.ROUTES,
            *admin.ROUTES,
            *admin_teams.ROUTES,
            *admin_prices.ROUTES,
            *admin_deliveries.ROUTES,
            *admin_exports.ROUTES,
            *admin_billing.ROUTES,
            *admin_maintenance.ROUTES,
            *admin_upstreams.ROUTES,
            *console.ROUTES,
            *console_routes.ROUTES,
            *portal.ROUTES,
            *portal_jobs.ROUTES,
            *portal_playground.ROUTES,
            *me.ROUTES,
            *webhooks.ROUTES,
            *proxy.ROUTES,
            *storage.ROUTES,
            *sync.ROUTES,
            *files.ROUTES,
            *page_errors.ROUTES,
            *queue.CATCH_ALL_ROUTES,
        ],
        middleware=[
            *_cors(settings),
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app, page_errors.error_page)
    fast_status = FastStatusPolls(app)
    measured = MetricsMiddleware(fast_status, metrics)
    traced = TracingMiddleware(measured, tracing) if tracing.enabled else measured
    return AccessLog(traced, enabled=settings.access_log)


def create_app_from_environment() -> ASGIApp:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from the environment."""
    return create_app(Settings())
