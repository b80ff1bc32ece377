"""The gateway's ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.accounts.keys import KeyStore
from gateway.accounts.requests import RequestRegistry
from gateway.accounts.teams import TeamStore
from gateway.errors import install_error_handlers
from gateway.http import admin, admin_teams, files, me, ops, queue
from gateway.http.body_limit import BodySizeLimit
from gateway.limits.admission import Admitter
from gateway.limits.completion import Completion
from gateway.limits.policies import PolicyCache
from gateway.limits.reconciler import Reconciler
from gateway.limits.scripts import Scripts
from gateway.limits.settlement import Meter
from gateway.links import Links
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.openapi import openapi_document
from gateway.services import Services
from gateway.settings import Settings
from gateway.store import connect_redis
from gateway.upstream import FalUpstream


def create_app(settings: Settings) -> Starlette:
    """Build the gateway for ``settings``; connections open with the app's lifespan."""
    metrics = Metrics()
    links = Links(
        settings.public_url,
        (settings.upstream_queue_url, settings.upstream_run_url, settings.upstream_rest_url),
        settings.media_hosts,
        settings.link_signing_key(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect_redis(settings)
        upstream = FalUpstream(settings, metrics)
        scripts = Scripts(redis, metrics)
        meter = Meter(scripts, metrics)
        completion = Completion(meter, upstream)
        app.state.services = Services(
            settings=settings,
            redis=redis,
            keys=KeyStore(redis),
            teams=TeamStore(redis),
            requests=RequestRegistry(redis, settings.request_retention),
            upstream=upstream,
            links=links,
            metrics=metrics,
            scripts=scripts,
            policies=PolicyCache(redis),
            admitter=Admitter(scripts, settings, metrics),
            meter=meter,
            completion=completion,
            openapi=openapi_document(settings.public_url),
        )
        reconciler = Reconciler(redis, completion, meter, upstream, settings, metrics)
        reconciling = asyncio.create_task(reconciler.run())
        try:
            yield
        finally:
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling
            await completion.close()
            await upstream.aclose()
            await redis.aclose()

    app = Starlette(
        routes=[
            *ops.ROUTES,
            *admin.ROUTES,
            *admin_teams.ROUTES,
            *me.ROUTES,
            *files.ROUTES,
            *queue.ROUTES,
        ],
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    return app


def create_app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from the environment."""
    return create_app(Settings())
