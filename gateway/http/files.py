"""``/files/...``: generated images behind gateway links, streamed from fal."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.errors import NotFound, UpstreamError
from gateway.http.services import services

_KEPT_HEADERS = ("content-type", "content-length", "cache-control", "etag", "last-modified")


async def download(request: Request) -> Response:
    gateway = services(request)
    url = gateway.links.resolve(request.path_params["token"])
    if url is None:
        raise NotFound("File not found")
    stack = contextlib.AsyncExitStack()
    upstream = await stack.enter_async_context(gateway.upstream.download(url))
    if upstream.status_code != 200:
        await stack.aclose()
        raise NotFound("File not found")
    headers = {name: upstream.headers[name] for name in _KEPT_HEADERS if name in upstream.headers}

    async def body() -> AsyncIterator[bytes]:
        async with stack:
            with contextlib.suppress(UpstreamError), gateway.upstream.stream_errors("file"):
                async for chunk in upstream.aiter_raw():
                    yield chunk

    return StreamingResponse(body(), headers=headers)


ROUTES = [Route("/files/{token}/{name}", download, methods=["GET"])]
