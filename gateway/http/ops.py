"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import time

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
    """Redis (a primary: a replica refuses writes) reachable, a fal account that can take jobs
    now or soon, and no background loop stalled; 503 otherwise. ``redis``: ``ok``, ``down`` or
    ``replica``; ``upstream``: ``ok``, ``down`` (fal's host does not answer) or
    ``unavailable`` (every account disabled or drained); ``accounts``: how many accounts take
    jobs now, and every one that does not (``disabled``, ``drained``: weight 0, or ``cooling``
    after fal's 429, which ends by itself and so leaves the process ready); ``loops``: the
    stalled ones."""
    gateway = services(request)
    redis, reachable = await asyncio.gather(
        redis_state(gateway.redis, gateway.store), gateway.upstream.reachable()
    )
    now = time.time()
    views = gateway.accounts.views()
    usable = sum(view.usable(now) for view in views)
    # States only: the reasons (fal's words about the reseller's account) are for the admin API.
    not_usable = {
        view.account.name: state if (state := view.state(now)[0]) != "active" else "drained"
        for view in views
        if not view.usable(now)
    }
    serving = usable + sum(state == "cooling" for state in not_usable.values())
    stalled = gateway.background.stalled()
    checks: dict[str, object] = {
        "redis": redis,
        "upstream": "down" if not reachable else "ok" if serving else "unavailable",
        "accounts": {"usable": usable, "not_usable": not_usable},
        "loops": dict.fromkeys(stalled, "stalled") or "ok",
    }
    ready = redis == "ok" and reachable and serving > 0 and not stalled
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
