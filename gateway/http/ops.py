"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.services import services
from gateway.store.health import redis_state
from gateway.web.jsoncodec import JSONResponse


async def healthz(request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Redis (a primary: a replica refuses writes) and fal are both reachable and no background
    loop is stalled; 503 names whichever is not: ``redis`` ``down`` or ``replica``, ``upstream``
    ``down``, ``loops``: the stalled ones."""
    gateway = services(request)
    redis, upstream_up = await asyncio.gather(
        redis_state(gateway.redis, gateway.store), gateway.upstream.reachable()
    )
    stalled = gateway.background.stalled()
    checks: dict[str, object] = {
        "redis": redis,
        "upstream": "ok" if upstream_up else "down",
        "loops": dict.fromkeys(stalled, "stalled") or "ok",
    }
    ready = redis == "ok" and upstream_up and not stalled
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, 200 if ready else 503
    )


async def openapi(request: Request) -> Response:
    """The public API's OpenAPI document."""
    return JSONResponse(services(request).openapi)


async def metrics(request: Request) -> Response:
    content, content_type = services(request).metrics.exposition()
    return Response(content, media_type=content_type)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
