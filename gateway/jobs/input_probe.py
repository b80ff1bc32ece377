"""Learning an input image's size from its URL before admission, by reading only its header.

What a job costs depends on the input's size when the request does not state the output size, so
the gateway reads the first bytes of ``image_url`` (at most ``input_probe_max_bytes``, within
``input_probe_timeout``) and lets Pillow read the header. fal's own file hosts are read directly;
any other host only under the rules that govern webhook targets (public addresses, the checked
address is the one connected to, redirects checked again). A URL that cannot be read this way is
reported unknown, and the job is then reserved at the largest size it could produce.

Reads happen before admission, so its rate limits do not bound them: each key may have
``per_key`` reads under way in a process (429 beyond), so that one tenant's slow image hosts
cannot hold the connections every other tenant's reads need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from gateway.catalog import Size
from gateway.limits.in_flight import PerKeyInFlight
from gateway.media.images import UnreadableImage, open_image
from gateway.relay.targets import TargetPolicy, TargetRefused

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
USER_AGENT = "fal-gateway-input-probe/0.1"


class Unreadable(Exception):
    """The URL's image header could not be read (the message says why; it is not shown)."""


def header_size(data: bytes) -> Size | None:
    """The size an image header states, or None while ``data`` holds no complete header (or
    no image fal accepts)."""
    try:
        with open_image(data) as image:
            return Size(*image.size)
    except UnreadableImage:
        return None


class InputProbe:
    """Reads image headers over HTTP, on its own connection budget."""

    def __init__(
        self,
        targets: TargetPolicy,
        is_upstream: Callable[[str], bool],
        timeout: float,
        max_bytes: int,
        max_connections: int,
        per_key: int,
    ) -> None:
        self._targets = targets
        self._is_upstream = is_upstream
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._reading = PerKeyInFlight(
            per_key,
            f"At most {per_key} input images per key are read at once",
            "too_many_input_reads",
        )
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def size_of(self, url: str, key_id: str) -> Size | None:
        """The pixel size of the image at ``url``, or None when it cannot be read; 429 when
        ``key_id`` already has its share of reads under way."""
        self._reading.take(key_id)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow(url)
        except (Unreadable, TargetRefused, httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
            logger.info("input image header not read: %s", type(exc).__name__)
            return None
        finally:
            self._reading.give_back(key_id)

    async def _follow(self, url: str) -> Size:
        for _ in range(MAX_REDIRECTS + 1):
            request = await self._request(url)
            response = await self._client.send(request, stream=True)
            try:
                if response.is_redirect and "location" in response.headers:
                    url = str(response.url.join(response.headers["location"]))
                    continue
                if response.status_code not in (200, 206):
                    raise Unreadable(f"status {response.status_code}")
                return await self._read_header(response)
            finally:
                await response.aclose()
        raise Unreadable("too many redirects")

    async def _request(self, url: str) -> httpx.Request:
        """A GET of the first bytes; to a host other than fal's, at the checked address."""
        headers = {"Range": f"bytes=0-{self._max_bytes - 1}"}
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for a port out of range, which no socket takes
        except ValueError as exc:
            raise Unreadable("not a valid URL") from exc
        if parts.scheme not in ("http", "https"):
            raise Unreadable("not http(s)")
        if self._is_upstream(url):
            return self._client.build_request("GET", url, headers=headers)
        target = await self._targets.resolve_public(url)
        pinned, host_headers, extensions = target.pinned_request()
        return self._client.build_request(
            "GET", pinned, headers={**headers, **host_headers}, extensions=extensions
        )

    async def _read_header(self, response: httpx.Response) -> Size:
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            size = await asyncio.to_thread(header_size, data[: self._max_bytes])
            if size is not None:
                return size
            if len(data) >= self._max_bytes:
                break
        raise Unreadable("no image header")
