"""Calls to fal's queue and file hosts with the reseller's key, on pooled keep-alive connections.

httpx keeps the API; its aiohttp transport does the I/O, because httpx 0.28's own pool collapses
under concurrency (encode/httpx#3215). Transport failures become ``UpstreamError``s here, and
``check`` decides which fal answers the caller sees as they are.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from opentelemetry.trace import Span, SpanKind

from gateway.errors import (
    FalError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)
from gateway.settings import Settings
from gateway.telemetry import tracing
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import OFF, Tracing
from gateway.upstream.pool import REFUSED_STATUSES, Credential
from gateway.upstream.transport import not_connected, timed_out
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


class HealthObserver(Protocol):
    """Told of fal's answers that say something of an account's health (``AccountPool``)."""

    async def observe(
        self, credential: Credential, status: int, body: bytes, headers: Mapping[str, str]
    ) -> None: ...

    def failed(self, account: str) -> None: ...


STARTS_WORK = frozenset({"submit", "run", "upload_initiate"})
"""Calls whose 429 says the account is rate-limited for new work (it cools down); a 429 on a
read (a status poll) is passed to its caller and changes nothing."""


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's ``x-fal-*`` headers (priority, hints, timeouts, lifecycle) for fal."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower().startswith(FORWARDED_HEADER_PREFIX) and name.lower() not in NOT_FORWARDED
    }


class FalUpstream:
    """fal's queue API and file hosts."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        health: HealthObserver,
        tracing: Tracing = OFF,
    ) -> None:
        self._health = health
        self._tracing = tracing
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

    def _headers(
        self, credential: Credential, headers: Mapping[str, str] | None, content: bytes | None
    ) -> dict[str, str]:
        return {
            "Accept": "application/json",
            **(headers or {}),
            "Authorization": credential.authorization,
            **({"Content-Type": "application/json"} if content is not None else {}),
        }

    def _request(
        self,
        credential: Credential,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """A request for a streamed answer, sent with ``_send``."""
        return self._client.build_request(
            method,
            f"{self._queue}/{path}",
            params=params,
            headers=self._headers(credential, headers, None),
        )

    async def _call(
        self,
        credential: Credential,
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
        with self._observed(operation, credential.account) as span:
            sent = self._headers(credential, headers, content)
            self._tracing.inject(sent)
            async with session.request(
                method,
                url,
                data=content,
                params=params,
                headers=sent,
                timeout=limits or self._timeout,
            ) as response:
                body = await response.read()
                answer = httpx.Response(response.status, headers=response.raw_headers, content=body)
            span.set_attribute(tracing.HTTP_STATUS, answer.status_code)
        if answer.status_code in REFUSED_STATUSES or (
            answer.status_code == 429 and operation in STARTS_WORK
        ):
            await self._health.observe(credential, answer.status_code, body, answer.headers)
        return answer

    async def _send(
        self,
        operation: str,
        request: httpx.Request,
        stream: bool = False,
        credential: Credential | None = None,
        account: str = "",
    ) -> httpx.Response:
        """Send a built request; ``credential`` when it carries a key (its answer then tells
        of the account's health), ``account`` names the account of a call without one."""
        with self._observed(operation, credential.account if credential else account) as span:
            if credential is not None:  # fal's API; its file hosts are sent no trace context
                self._tracing.inject(request.headers)
            response = await self._client.send(request, stream=stream)
            span.set_attribute(tracing.HTTP_STATUS, response.status_code)
        if credential is not None and response.status_code in REFUSED_STATUSES:
            await self._health.observe(credential, response.status_code, b"", response.headers)
        return response

    @contextlib.contextmanager
    def _observed(self, operation: str, account: str) -> Iterator[Span]:
        """Count, time and trace an upstream call, and map its transport failures."""
        started = time.perf_counter()
        self._metrics.upstream_calls.labels(account, operation).inc()
        attributes = {tracing.OPERATION: operation, tracing.ACCOUNT: account}
        try:
            with (
                self._tracing.span(f"fal {operation}", attributes, SpanKind.CLIENT) as span,
                self._errors(operation, account),
            ):
                yield span
        finally:
            self._metrics.upstream_seconds.labels(operation).observe(time.perf_counter() - started)

    @contextlib.contextmanager
    def _errors(self, operation: str, account: str = "") -> Iterator[None]:
        try:
            yield
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            if timed_out(exc):
                self._failed(operation, "timeout", account)
                raise UpstreamTimeout("fal did not answer in time") from exc
            self._failed(operation, "unavailable", account)
            if not_connected(exc):
                raise UpstreamUnreachable("fal could not be reached") from exc
            raise UpstreamUnavailable("fal could not be reached") from exc

    def _failed(self, operation: str, kind: str, account: str) -> None:
        self._metrics.upstream_errors.labels(operation, kind, account).inc()
        if account:
            self._health.failed(account)

    def check(self, operation: str, response: httpx.Response, account: str = "") -> None:
        """Raise for fal answers the caller must not see as they are: infrastructure failures and
        our key being refused. 2xx, the caller's own 4xx (bad body, unknown request, ...) and a
        job's own error outcome (a 5xx carrying ``x-fal-request-id``, e.g. a failed or timed-out
        job's result) return normally."""
        code = response.status_code
        if code < 400 or code in PASSED_THROUGH:
            return
        if code >= 500 and REQUEST_ID_HEADER in response.headers:
            return
        self._failed(operation, "server_error" if code >= 500 else "refused", account)
        if code in REFUSED_STATUSES:
            raise UpstreamError("fal refused the gateway's credentials", error_type="upstream_auth")
        raise UpstreamError(f"fal answered {code}")

    async def submit(
        self,
        credential: Credential,
        endpoint_id: str,
        body: bytes,
        headers: Mapping[str, str],
        webhook_url: str | None,
    ) -> httpx.Response:
        params = {"fal_webhook": webhook_url} if webhook_url else None
        return await self._call(
            credential,
            "submit",
            "POST",
            f"{self._queue}/{endpoint_id}",
            content=body,
            params=params,
            headers=headers,
        )

    async def run(
        self, credential: Credential, endpoint_id: str, body: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """``fal.run``: the model output, once the job has run (the connection is held)."""
        return await self._call(
            credential,
            "run",
            "POST",
            f"{self._run}/{endpoint_id}",
            content=body,
            headers=headers,
            limits=self._sync_timeout,
            long=True,
        )

    async def initiate_upload(
        self, credential: Credential, storage_type: str, body: bytes
    ) -> httpx.Response:
        """fal storage: where to PUT a file, and where it will be served (also what tells
        whether fal accepts a key for billable work: a locked account is refused here)."""
        return await self._call(
            credential,
            "upload_initiate",
            "POST",
            f"{self._rest}/storage/upload/initiate",
            content=body,
            params={"storage_type": storage_type},
        )

    @contextlib.asynccontextmanager
    async def upload(
        self, account: str, url: str, content: AsyncIterator[bytes], content_type: str | None
    ) -> AsyncIterator[httpx.Response]:
        """PUT a file's bytes, streamed, to an upload URL fal handed out to ``account`` (it
        needs no key)."""
        headers = {"Content-Type": content_type} if content_type else {}
        request = self._client.build_request("PUT", url, content=content, headers=headers)
        response = await self._send("upload", request, account=account)
        try:
            yield response
        finally:
            await response.aclose()

    async def status(
        self, credential: Credential, app_id: str, request_id: str, logs: bool
    ) -> httpx.Response:
        url = f"{self._queue}/{app_id}/requests/{request_id}/status"
        params = {"logs": "1" if logs else "0"}
        return await self._call(credential, "status", "GET", url, params=params)

    async def result(self, credential: Credential, app_id: str, request_id: str) -> httpx.Response:
        url = f"{self._queue}/{app_id}/requests/{request_id}"
        return await self._call(credential, "result", "GET", url)

    async def cancel(self, credential: Credential, app_id: str, request_id: str) -> httpx.Response:
        url = f"{self._queue}/{app_id}/requests/{request_id}/cancel"
        return await self._call(credential, "cancel", "PUT", url)

    @contextlib.asynccontextmanager
    async def status_stream(
        self, credential: Credential, app_id: str, request_id: str, logs: bool
    ) -> AsyncIterator[httpx.Response]:
        """The upstream SSE status stream, open while the context lasts."""
        request = self._request(
            credential,
            "GET",
            f"{app_id}/requests/{request_id}/status/stream",
            params={"logs": "1" if logs else "0"},
            headers={"Accept": "text/event-stream"},
        )
        response = await self._send("status_stream", request, stream=True, credential=credential)
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
