"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.services import services
from gateway.web.jsoncodec import JSONResponse


async def healthz(request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Redis and fal are both reachable and no background loop is stalled; 503 names whichever
    is not (``loops``: the stalled ones)."""
    gateway = services(request)

    async def redis_ok() -> bool:
        try:
            return bool(await gateway.redis.ping())
        except RedisError:
            return False

    redis_up, upstream_up = await asyncio.gather(redis_ok(), gateway.upstream.reachable())
    stalled = gateway.background.stalled()
    checks: dict[str, object] = {
        "redis": "ok" if redis_up else "down",
        "upstream": "ok" if upstream_up else "down",
        "loops": dict.fromkeys(stalled, "stalled") or "ok",
    }
    ready = redis_up and upstream_up and not stalled
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
