"""What kind of transport failure a call to fal met: httpx's errors, or aiohttp's beneath them."""

from __future__ import annotations

import aiohttp
import httpx


def timed_out(exc: BaseException) -> bool:
    """Whether a transport failure was a timeout. httpx-aiohttp 0.2 maps a refused connection to
    ``ConnectTimeout``, so the aiohttp error underneath decides when there is one (aiohttp's
    timeout errors are ``TimeoutError``s)."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if isinstance(cause, aiohttp.ClientError | TimeoutError):
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException)


def not_connected(exc: BaseException) -> bool:
    """Whether a transport failure happened before any of the request was sent: no
    connection could be opened (refused, unresolvable host, failed TLS handshake)."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ClientConnectorError)
    return isinstance(exc, httpx.ConnectError)
