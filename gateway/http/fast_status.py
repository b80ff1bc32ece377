"""Status polls without the framework's layers: the busiest request, answered directly.

fal's clients poll status every 100-500 ms, so most of a gateway's traffic is these polls.
Starlette's routing, request objects and exception middleware cost about a quarter of a poll's
CPU (``bench/PROFILE.md``). This ASGI layer answers ``GET /{owner}/{app}/requests/{id}/status``
itself, with the same code as the routed handler (``queue.status_answer``); anything else, polls
asking for logs and browser requests (which need CORS handling) go through the app as usual.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import FalError, error_response
from gateway.http.queue import REQUEST_ROUTES, status, status_answer, trace_request
from gateway.http.services import Services

_STATUS_PATH = re.compile(r"/([^/]+)/([^/]+)/requests/([^/]+)/status")
_WITHOUT_LOGS = frozenset({b"", b"logs=0", b"logs=false"})
_STATUS_ROUTE = next(r for r in REQUEST_ROUTES if getattr(r, "endpoint", None) is status)
"""The routed status handler's route: access lines name its path template."""


class FastStatusPolls:
    """Answers plain status polls; hands every other request to ``app``."""

    def __init__(self, app: ASGIApp, services: Services | None = None) -> None:
        self.app = app
        self.services = services
        """Set by the app's lifespan, once the services exist."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _STATUS_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is None or self.services is None or not self._plain(scope):
            await self.app(scope, receive, send)
            return
        owner, app, request_id = match.groups()
        scope["endpoint"] = status  # the handler name that metrics are labelled with
        scope["route"] = _STATUS_ROUTE  # the route template access lines and traces name
        authorization = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"authorization"
            ),
            None,
        )
        try:
            owned = await self.services.requests.authorize(
                authorization, f"{owner}/{app}", request_id
            )
            trace_request(self.services, owned)
            response = await status_answer(self.services, owned, logs=False)
        except FalError as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    @staticmethod
    def _plain(scope: Scope) -> bool:
        """Without logs (as fal's clients poll) and without ``Origin`` (browsers' requests need
        CORS handling)."""
        return scope["query_string"] in _WITHOUT_LOGS and all(
            name != b"origin" for name, _ in scope["headers"]
        )
