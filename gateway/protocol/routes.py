"""The URL shapes of fal's queue API, shared by the emulator and the gateway (fal-protocol §1-5).

Status, result and cancel take ``owner/app`` only: the subpath used at submit is dropped. Another
method than POST on an endpoint's submit or sync run path is a 405 naming POST in ``Allow``; any
other method on an unknown path is a 404 in fal's shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.catalog import find_endpoint
from gateway.errors import no_such_route

Handler = Callable[[Request], Awaitable[Response]]


def request_routes(
    *, status: Handler, status_stream: Handler, result: Handler, cancel: Handler
) -> list[BaseRoute]:
    """Routes naming a request (``/{owner}/{app}/requests/{id}...``); no other route of the
    gateway or the emulator has that shape, so they may come first (status polls are the
    busiest requests by far)."""
    request = "/{owner}/{app}/requests/{request_id}"
    return [
        Route(f"{request}/status", status, methods=["GET"]),
        Route(f"{request}/status/stream", status_stream, methods=["GET"]),
        Route(f"{request}/cancel", cancel, methods=["PUT"]),
        Route(request, result, methods=["GET"]),
    ]


async def _not_a_post(request: Request) -> Response:
    """405 on an endpoint's submit or sync run path (they take POST only), else 404."""
    path: str = request.path_params["path"]
    if find_endpoint(path.removeprefix("sync/")) is not None:
        raise HTTPException(405, headers={"Allow": "POST"})
    return await no_such_route(request)


def catch_all_routes(submit: Handler) -> list[BaseRoute]:
    """The submit route, which catches every other POST, and 405 or 404 for other methods:
    mount last."""
    return [
        Route("/{endpoint:path}", submit, methods=["POST"]),
        Route("/{path:path}", _not_a_post, methods=["GET", "PUT", "PATCH", "DELETE"]),
    ]
