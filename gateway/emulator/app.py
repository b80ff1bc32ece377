"""The emulator's ASGI app: fal's queue, sync, storage and JWKS on one host."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.emulator import control, routes_queue, routes_storage
from gateway.emulator.service import Emulator
from gateway.emulator.signing import WebhookSigner
from gateway.errors import install_error_handlers
from gateway.settings import EmulatorSettings


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A caller that hung up while its body was being read: nothing was done, nobody to tell."""
    return Response(status_code=499)


def create_emulator_app(settings: EmulatorSettings) -> Starlette:
    """Build the emulator; its runners start with the app's lifespan."""
    request_log = control.RequestLog()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        signer = await asyncio.to_thread(
            WebhookSigner.load_or_create, settings.signing_key_file, settings.user_id
        )
        timeout = httpx.Timeout(settings.input_fetch_timeout)
        async with httpx.AsyncClient(timeout=timeout) as client:
            emulator = Emulator(settings, client, signer)
            app.state.emulator = emulator
            runners = asyncio.create_task(emulator.run())
            try:
                yield
            finally:
                runners.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runners
                await emulator.close()

    app = Starlette(
        routes=[*control.ROUTES, *routes_storage.ROUTES, *routes_queue.ROUTES],
        middleware=[Middleware(control.RequestLogMiddleware, log=request_log)],
        lifespan=lifespan,
    )
    app.state.request_log = request_log
    install_error_handlers(app)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    return app
