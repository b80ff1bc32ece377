"""The URL shapes of fal's queue API, shared by the emulator and the gateway (fal-protocol §1-5).

Status, result and cancel take ``owner/app`` only: the subpath used at submit is dropped. Any other
method on an unknown path is a 404 in fal's shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

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


def catch_all_routes(submit: Handler) -> list[BaseRoute]:
    """The submit route, which catches every other POST, and 404 for other methods: mount last."""
    return [
        Route("/{endpoint:path}", submit, methods=["POST"]),
        Route("/{path:path}", no_such_route, methods=["GET", "PUT", "PATCH", "DELETE"]),
    ]
