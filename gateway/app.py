"""The gateway's ASGI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.accounts.keys import KeyStore
from gateway.accounts.requests import RequestRegistry
from gateway.accounts.teams import TeamStore
from gateway.errors import install_error_handlers
from gateway.http import admin, files, ops, queue
from gateway.http.body_limit import BodySizeLimit
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
        app.state.services = Services(
            settings=settings,
            redis=redis,
            keys=KeyStore(redis),
            teams=TeamStore(redis),
            requests=RequestRegistry(redis, settings.request_retention),
            upstream=upstream,
            links=links,
            metrics=metrics,
            openapi=openapi_document(settings.public_url),
        )
        try:
            yield
        finally:
            await upstream.aclose()
            await redis.aclose()

    app = Starlette(
        routes=[*ops.ROUTES, *admin.ROUTES, *files.ROUTES, *queue.ROUTES],
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
