"""fal's queue API at the gateway's root: submit, status, status stream, result, cancel.

Each handler authenticates the caller, calls fal with the reseller's key and hands back fal's
answer with every URL pointing at the gateway.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.catalog import Endpoint, find_endpoint
from gateway.errors import BadRequest, FalError, NotFound, UpstreamError
from gateway.fal_routes import queue_routes
from gateway.services import Services, services
from gateway.submission.policy import effective
from gateway.submission.prepare import Submission, prepare
from gateway.upstream.client import forwarded_headers

logger = logging.getLogger(__name__)

# fal response headers callers may rely on; all others (hosts, cookies, ...) stay behind.
RELAYED_HEADERS = (
    "x-fal-request-id",
    "x-fal-error-type",
    "x-fal-billable-units",
    "x-fal-request-timeout-type",
    "retry-after",
)
ESTIMATE_HEADER = "X-Gateway-Estimated-Cost-Micros"
"""fal's list price of the request as forwarded, in micro-units (before any reseller margin)."""
IGNORED_FIELDS_HEADER = "X-Gateway-Ignored-Fields"
"""Comma-separated paths of body fields the endpoint does not have; they were not forwarded."""


def _endpoint(path: str) -> Endpoint:
    endpoint = find_endpoint(path)
    if endpoint is None:
        raise NotFound(f"Application '{path}' not found", error_type="application_not_found")
    return endpoint


def _wants_logs(request: Request) -> bool:
    return request.query_params.get("logs", "0").lower() in ("1", "true")


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        if response.is_success:
            raise UpstreamError("fal answered with a body that is not JSON") from exc
        raise FalError(
            f"fal answered {response.status_code}", status_code=response.status_code
        ) from exc


def _relay(response: httpx.Response, body: Any) -> Response:
    headers = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
    return JSONResponse(body, status_code=response.status_code, headers=headers)


async def _owned(request: Request) -> tuple[Services, str, str]:
    """The services, app id and request id of a call on a request the caller owns."""
    gateway = services(request)
    params = request.path_params
    app_id, request_id = f"{params['owner']}/{params['app']}", params["request_id"]
    await gateway.requests.authorize(request.headers.get("authorization"), app_id, request_id)
    return gateway, app_id, request_id


def _submission_headers(submission: Submission) -> dict[str, str]:
    headers = {ESTIMATE_HEADER: str(submission.estimate.cost_micros)}
    if submission.ignored_fields:
        headers[IGNORED_FIELDS_HEADER] = ",".join(submission.ignored_fields)
    return headers


async def submit(request: Request) -> Response:
    gateway = services(request)
    key, team_policy = await gateway.keys.authenticate_with_team_policy(
        request.headers.get("authorization")
    )
    endpoint = _endpoint(request.path_params["endpoint"])
    if "fal_webhook" in request.query_params:
        raise BadRequest(
            "fal_webhook is not available through this gateway yet", error_type="unsupported"
        )
    submission = await prepare(
        endpoint,
        await request.body(),
        effective(team_policy, key.policy),
        gateway.settings.max_data_uri_bytes,
    )
    response = await gateway.upstream.submit(
        endpoint.id, submission.body, forwarded_headers(request.headers), None
    )
    gateway.upstream.check("submit", response)
    body = _json_body(response)
    if not response.is_success:
        return _relay(response, gateway.links.rewrite(body))
    await gateway.requests.record(key, body["request_id"], endpoint)
    relayed = _relay(response, gateway.links.rewrite_queue_body(body, endpoint.app_id))
    relayed.headers.update(_submission_headers(submission))
    return relayed


async def status(request: Request) -> Response:
    gateway, app_id, request_id = await _owned(request)
    response = await gateway.upstream.status(app_id, request_id, _wants_logs(request))
    gateway.upstream.check("status", response)
    return _relay(response, gateway.links.rewrite_queue_body(_json_body(response), app_id))


async def status_stream(request: Request) -> Response:
    """Relay fal's status events one by one as they arrive, URLs rewritten."""
    gateway, app_id, request_id = await _owned(request)
    stack = contextlib.AsyncExitStack()
    upstream = await stack.enter_async_context(
        gateway.upstream.status_stream(app_id, request_id, _wants_logs(request))
    )
    try:
        if not upstream.is_success:
            await upstream.aread()
            gateway.upstream.check("status_stream", upstream)
            return _relay(upstream, gateway.links.rewrite(_json_body(upstream)))
    except BaseException:
        await stack.aclose()
        raise

    async def events() -> AsyncIterator[dict[str, str]]:
        async with stack:
            try:
                with gateway.upstream.stream_errors("status_stream"):
                    async for event in EventSource(upstream).aiter_sse():
                        if not event.data:
                            continue
                        data = gateway.links.rewrite_queue_body(json.loads(event.data), app_id)
                        yield {"data": json.dumps(data)}
            except UpstreamError:
                logger.warning("status stream of %s broke off upstream", request_id)

    headers = {"x-fal-request-id": request_id}
    return EventSourceResponse(events(), headers=headers)


async def result(request: Request) -> Response:
    gateway, app_id, request_id = await _owned(request)
    response = await gateway.upstream.result(app_id, request_id)
    gateway.upstream.check("result", response)
    return _relay(response, gateway.links.rewrite(_json_body(response)))


async def cancel(request: Request) -> Response:
    gateway, app_id, request_id = await _owned(request)
    response = await gateway.upstream.cancel(app_id, request_id)
    gateway.upstream.check("cancel", response)
    return _relay(response, gateway.links.rewrite(_json_body(response)))


ROUTES = queue_routes(
    submit=submit, status=status, status_stream=status_stream, result=result, cancel=cancel
)
