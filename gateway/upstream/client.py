"""Calls to fal's queue and file hosts with the reseller's key, on pooled keep-alive connections.

httpx keeps the API; its aiohttp transport does the I/O, because httpx 0.28's own pool collapses
under concurrency (encode/httpx#3215). Transport failures become ``UpstreamError``s here, and
``check`` decides which fal answers the caller sees as they are.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from gateway.errors import FalError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings import Settings
from gateway.telemetry.metrics import Metrics
from gateway.web import jsoncodec

USER_AGENT = "fal-gateway/0.1"

# Caller headers fal acts on; everything else (above all Authorization) stays at the gateway.
FORWARDED_HEADER_PREFIX = "x-fal-"
NOT_FORWARDED = frozenset({"x-fal-target-url"})

# fal answers the caller may see as they are: the caller's own mistakes and missing requests.
PASSED_THROUGH = frozenset({400, 404, 409, 410, 413, 422, 429})
REQUEST_ID_HEADER = "x-fal-request-id"

# fal response headers callers may rely on; all others (hosts, cookies, ...) stay behind.
RELAYED_HEADERS = (
    REQUEST_ID_HEADER,
    "x-fal-error-type",
    "x-fal-billable-units",
    "x-fal-request-timeout-type",
    "retry-after",
)


def relayed_headers(response: httpx.Response) -> dict[str, str]:
    """The headers of fal's answer that the caller gets too."""
    return {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}


def json_body(response: httpx.Response) -> Any:
    """fal's answer as JSON; a success that is not JSON is an upstream fault."""
    try:
        return jsoncodec.loads(response.content)
    except ValueError as exc:
        if response.is_success:
            raise UpstreamError("fal answered with a body that is not JSON") from exc
        raise FalError(
            f"fal answered {response.status_code}", status_code=response.status_code
        ) from exc


def _timed_out(exc: BaseException) -> bool:
    """Whether a transport failure was a timeout. httpx-aiohttp 0.2 maps a refused connection to
    ``ConnectTimeout``, so the aiohttp error underneath decides when there is one (aiohttp's
    timeout errors are ``TimeoutError``s)."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if isinstance(cause, aiohttp.ClientError | TimeoutError):
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException)


class KeyPool:
    """The reseller's fal keys, used in turn."""

    def __init__(self, keys: tuple[SecretStr, ...]) -> None:
        if not keys:
            raise ValueError("no upstream fal key configured (GATEWAY_FAL_KEY)")
        self._keys: Iterator[SecretStr] = itertools.cycle(keys)

    def authorization(self) -> str:
        return f"Key {next(self._keys).get_secret_value()}"


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's ``x-fal-*`` headers (priority, hints, timeouts, lifecycle) for fal."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower().startswith(FORWARDED_HEADER_PREFIX) and name.lower() not in NOT_FORWARDED
    }


class FalUpstream:
    """fal's queue API and file hosts."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._keys = KeyPool(settings.fal_key)
        self._queue = settings.upstream_queue_url.rstrip("/")
        self._run = settings.upstream_run_url.rstrip("/")
        self._rest = settings.upstream_rest_url.rstrip("/")
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout, sock_connect=settings.upstream_connect_timeout
        )
        self._sync_timeout = aiohttp.ClientTimeout(
            total=settings.upstream_sync_timeout, sock_connect=settings.upstream_connect_timeout
        )
        # Two keep-alive pools, so that calls holding a connection for long (sync runs, status
        # streams, file transfers) can never take the connections short calls (submit, status,
        # result, cancel) need. JSON calls use aiohttp directly (httpx's own layers cost as much
        # CPU as the rest of a submit); streamed bodies go through httpx for its streaming API.
        self._session = self._pool(settings.upstream_max_connections)
        self._long_session = self._pool(settings.upstream_long_connections)
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(client=self._long_session),
            timeout=httpx.Timeout(
                settings.upstream_timeout, connect=settings.upstream_connect_timeout
            ),
            headers={"User-Agent": USER_AGENT},
        )

    def _pool(self, size: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=size),
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._long_session.close()
        await self._session.close()

    def _headers(self, headers: Mapping[str, str] | None, content: bytes | None) -> dict[str, str]:
        return {
            "Accept": "application/json",
            **(headers or {}),
            "Authorization": self._keys.authorization(),
            **({"Content-Type": "application/json"} if content is not None else {}),
        }

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """A request for a streamed answer, sent with ``_send``."""
        return self._client.build_request(
            method, f"{self._queue}/{path}", params=params, headers=self._headers(headers, None)
        )

    async def _call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        limits: aiohttp.ClientTimeout | None = None,
        long: bool = False,
    ) -> httpx.Response:
        """A call whose answer is read whole (JSON), over the pool directly; ``limits``
        replaces the usual timeouts, ``long`` takes the pool of long calls."""
        session = self._long_session if long else self._session
        with self._observed(operation):
            async with session.request(
                method,
                url,
                data=content,
                params=params,
                headers=self._headers(headers, content),
                timeout=limits or self._timeout,
            ) as response:
                body = await response.read()
                return httpx.Response(response.status, headers=response.raw_headers, content=body)

    async def _send(
        self, operation: str, request: httpx.Request, stream: bool = False
    ) -> httpx.Response:
        with self._observed(operation):
            return await self._client.send(request, stream=stream)

    @contextlib.contextmanager
    def _observed(self, operation: str) -> Iterator[None]:
        """Time an upstream call and map its transport failures."""
        started = time.perf_counter()
        try:
            with self._errors(operation):
                yield
        finally:
            self._metrics.upstream_seconds.labels(operation).observe(time.perf_counter() - started)

    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            if _timed_out(exc):
                self._metrics.upstream_errors.labels(operation, "timeout").inc()
                raise UpstreamTimeout("fal did not answer in time") from exc
            self._metrics.upstream_errors.labels(operation, "unavailable").inc()
            raise UpstreamUnavailable("fal could not be reached") from exc

    def check(self, operation: str, response: httpx.Response) -> None:
        """Raise for fal answers the caller must not see as they are: infrastructure failures and
        our key being refused. 2xx, the caller's own 4xx (bad body, unknown request, ...) and a
        job's own error outcome (a 5xx carrying ``x-fal-request-id``, e.g. a failed or timed-out
        job's result) return normally."""
        code = response.status_code
        if code < 400 or code in PASSED_THROUGH:
            return
        if code >= 500 and REQUEST_ID_HEADER in response.headers:
            return
        kind = "server_error" if code >= 500 else "refused"
        self._metrics.upstream_errors.labels(operation, kind).inc()
        if code in (401, 403):
            raise UpstreamError("fal refused the gateway's credentials", error_type="upstream_auth")
        raise UpstreamError(f"fal answered {code}")

    async def submit(
        self, endpoint_id: str, body: bytes, headers: Mapping[str, str], webhook_url: str | None
    ) -> httpx.Response:
        params = {"fal_webhook": webhook_url} if webhook_url else None
        return await self._call(
            "submit",
            "POST",
            f"{self._queue}/{endpoint_id}",
            content=body,
            params=params,
            headers=headers,
        )

    async def run(
        self, endpoint_id: str, body: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """``fal.run``: the model output, once the job has run (the connection is held)."""
        return await self._call(
            "run",
            "POST",
            f"{self._run}/{endpoint_id}",
            content=body,
            headers=headers,
            limits=self._sync_timeout,
            long=True,
        )

    async def initiate_upload(self, storage_type: str, body: bytes) -> httpx.Response:
        """fal storage: where to PUT a file, and where it will be served."""
        return await self._call(
            "upload_initiate",
            "POST",
            f"{self._rest}/storage/upload/initiate",
            content=body,
            params={"storage_type": storage_type},
        )

    @contextlib.asynccontextmanager
    async def upload(
        self, url: str, content: AsyncIterator[bytes], content_type: str | None
    ) -> AsyncIterator[httpx.Response]:
        """PUT a file's bytes, streamed, to an upload URL fal handed out (it needs no key)."""
        headers = {"Content-Type": content_type} if content_type else {}
        request = self._client.build_request("PUT", url, content=content, headers=headers)
        response = await self._send("upload", request)
        try:
            yield response
        finally:
            await response.aclose()

    async def status(self, app_id: str, request_id: str, logs: bool) -> httpx.Response:
        url = f"{self._queue}/{app_id}/requests/{request_id}/status"
        return await self._call("status", "GET", url, params={"logs": "1" if logs else "0"})

    async def result(self, app_id: str, request_id: str) -> httpx.Response:
        return await self._call("result", "GET", f"{self._queue}/{app_id}/requests/{request_id}")

    async def cancel(self, app_id: str, request_id: str) -> httpx.Response:
        url = f"{self._queue}/{app_id}/requests/{request_id}/cancel"
        return await self._call("cancel", "PUT", url)

    @contextlib.asynccontextmanager
    async def status_stream(
        self, app_id: str, request_id: str, logs: bool
    ) -> AsyncIterator[httpx.Response]:
        """The upstream SSE status stream, open while the context lasts."""
        request = self._request(
            "GET",
            f"{app_id}/requests/{request_id}/status/stream",
            params={"logs": "1" if logs else "0"},
            headers={"Accept": "text/event-stream"},
        )
        response = await self._send("status_stream", request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    @contextlib.asynccontextmanager
    async def download(self, url: str) -> AsyncIterator[httpx.Response]:
        """A generated file, streamed; fal's file hosts need no key."""
        response = await self._send("file", self._client.build_request("GET", url), stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def reachable(self) -> bool:
        """Whether fal's queue host answers HTTP at all (any status counts)."""
        try:
            await self._client.get(self._queue + "/", timeout=2.0)
        except httpx.HTTPError:
            return False
        return True

    def stream_errors(self, operation: str) -> contextlib.AbstractContextManager[None]:
        """Map transport failures while reading a streamed body."""
        return self._errors(operation)
