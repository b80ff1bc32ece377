"""Each request's id, fields and access line, as a pure ASGI layer (outermost, so that every
line logged while the request is handled carries its fields).

The request id is the caller's ``X-Request-ID`` when it is short and plain (at most 128 of
``A-Z a-z 0-9 . _ : + = / -``), else a new random one; the response carries it back in
``X-Request-ID``. The access line names the route by its template
(``/{owner}/{app}/requests/{request_id}/status``), never the path, which may hold a signed file
token, and never the query string; its other fields come from ``log_context``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.telemetry import log_context

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+=/-]{1,128}")
UNMATCHED = "unmatched"
"""The route of a request no route took (a 404 before routing, or a request cut short)."""


def request_id(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` if it is sane, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.fullmatch(value):
                sane: str = value.decode("ascii")
                return sane
            break
    return secrets.token_hex(16)


def route_template(scope: Scope) -> str:
    """The path template of the route that took the request (``scope["route"]``, which
    starlette's router and ``FastStatusPolls`` set)."""
    route = scope.get("route")
    path: str = getattr(route, "path", UNMATCHED)
    return path


class AccessLog:
    """Gives each HTTP request its id and log fields and, when ``enabled``, logs its access
    line on ``gateway.access`` once it is answered."""

    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled
        self.logger = logging.getLogger("gateway.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        header = (REQUEST_ID_HEADER, rid.encode("ascii"))
        status = 500

        async def identified_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = log_context.begin(rid)
        try:
            await self.app(scope, receive, identified_send)
        finally:
            if self.enabled:
                self._log(scope, status, time.perf_counter() - started)
            log_context.end(token)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        method, route, milliseconds = scope["method"], route_template(scope), seconds * 1000
        extra: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(milliseconds, 3),
        }
        self.logger.info("%s %s %d %.1f ms", method, route, status, milliseconds, extra=extra)
