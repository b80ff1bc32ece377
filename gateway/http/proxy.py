"""fal's proxy protocol at ``/fal/proxy``, as ``@fal-ai/server-proxy`` speaks it.

fal's clients configured with ``proxyUrl`` send every call here, naming the fal URL they meant in
``x-fal-target-url``. The target's host and path are mapped to the gateway's own route for it and
the request is dispatched there, so authentication, policy, quotas, metering and URL rewriting
are exactly those of the direct routes. Only what this gateway serves is accepted: queue calls of
the catalog's endpoints (``queue.fal.run``), sync runs (``fal.run``) and upload initiation
(``rest.fal.ai``); anything else is a 400, as fal's own proxy answers.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.catalog import APP_IDS, find_endpoint
from gateway.errors import BadRequest, error_response

TARGET_HEADER = "x-fal-target-url"
QUEUE_HOSTS = frozenset({"queue.fal.run", "queue.falrun.com"})
RUN_HOSTS = frozenset({"fal.run"})
REST_HOSTS = frozenset({"rest.fal.ai", "rest.alpha.fal.ai"})
UPLOAD_INITIATE = "/storage/upload/initiate"
_REQUEST_PATH = re.compile(r"/([^/]+)/([^/]+)/requests/[^/]+(?:/status(?:/stream)?|/cancel)?")


def route_for(target: str) -> tuple[str, str] | None:
    """The gateway path and query serving the fal URL ``target``, or None if it serves none."""
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    host, path = (parts.hostname or "").lower(), parts.path
    if parts.scheme != "https":
        return None
    if host in QUEUE_HOSTS:
        request = _REQUEST_PATH.fullmatch(path)
        if find_endpoint(path) or (request and f"{request[1]}/{request[2]}" in APP_IDS):
            return path, parts.query
    elif host in RUN_HOSTS and find_endpoint(path):
        return f"/sync{path}", parts.query
    elif host in REST_HOSTS and path == UPLOAD_INITIATE:
        return path, parts.query
    return None


class FalProxy:
    """The ASGI endpoint of ``/fal/proxy``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = Headers(scope=scope).get(TARGET_HEADER)
        routed = route_for(target) if target else None
        if routed is None:
            detail = "Invalid x-fal-target-url" if target else f"Missing the {TARGET_HEADER} header"
            await error_response(BadRequest(detail, error_type="invalid_target"))(
                scope, receive, send
            )
            return
        path, query = routed
        inner = {**scope, "path": path, "raw_path": path.encode(), "query_string": query.encode()}
        await scope["app"].router(inner, receive, send)


ROUTES = [Route("/fal/proxy", FalProxy(), methods=["GET", "POST", "PUT"])]
