"""Noticing that an HTTP client hung up while its request is still being worked on."""

from __future__ import annotations

from starlette.requests import Request


async def hung_up(request: Request) -> None:
    """Return when the client disconnects (for handlers whose body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
