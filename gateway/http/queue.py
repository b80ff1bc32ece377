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
from urllib.parse import quote, urlencode

import httpx
from httpx_sse import EventSource
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.accounts.keys import parse_authorization
from gateway.accounts.requests import OwnedRequest
from gateway.accounts.tokens import Token
from gateway.catalog import Endpoint, find_endpoint
from gateway.errors import (
    FalError,
    NotFound,
    RequestValidationFailed,
    StoreUnavailable,
    UpstreamError,
)
from gateway.fal_routes import queue_routes
from gateway.limits.admission import Admission, StalePolicy
from gateway.limits.completion import Job
from gateway.limits.settlement import FAILED, REFUSED
from gateway.relay.targets import TargetRefused
from gateway.services import Services, services
from gateway.submission.policy import check_origin
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
"""Comma-separated paths of body fields the endpoint does not have (percent-encoded where not
plain ASCII); they were not forwarded."""
RESERVED_HEADER = "X-Gateway-Reserved-Micros"
"""Credit held for the request (list price times the team's multiplier) until it settles."""


def endpoint_or_404(path: str) -> Endpoint:
    endpoint = find_endpoint(path)
    if endpoint is None:
        raise NotFound(f"Application '{path}' not found", error_type="application_not_found")
    return endpoint


def _wants_logs(request: Request) -> bool:
    return request.query_params.get("logs", "0").lower() in ("1", "true")


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        if response.is_success:
            raise UpstreamError("fal answered with a body that is not JSON") from exc
        raise FalError(
            f"fal answered {response.status_code}", status_code=response.status_code
        ) from exc


def relay(response: httpx.Response, body: Any) -> Response:
    headers = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
    return JSONResponse(body, status_code=response.status_code, headers=headers)


async def _owned(request: Request) -> tuple[Services, OwnedRequest]:
    """The services and the caller's own request named in the path (else 401/404)."""
    gateway = services(request)
    params = request.path_params
    app_id, request_id = f"{params['owner']}/{params['app']}", params["request_id"]
    _, owned = await gateway.requests.authorize(
        request.headers.get("authorization"), app_id, request_id
    )
    return gateway, owned


def submission_headers(submission: Submission, admission: Admission) -> dict[str, str]:
    headers = {
        ESTIMATE_HEADER: str(submission.estimate.cost_micros),
        RESERVED_HEADER: str(admission.cost_micros),
        **admission.headers,
    }
    if submission.ignored_fields:
        # Field names come from the caller and may be any text; header values must be latin-1.
        headers[IGNORED_FIELDS_HEADER] = ",".join(
            quote(name, safe="._-~") for name in submission.ignored_fields
        )
    return headers


async def _check_webhook(gateway: Services, url: str) -> None:
    """A caller's ``fal_webhook`` must be a public https URL (refused before any charge)."""
    try:
        await gateway.targets.resolve(url)
    except TargetRefused as exc:
        raise RequestValidationFailed(
            [{"loc": ["query", "fal_webhook"], "msg": str(exc), "type": "webhook_target"}]
        ) from exc


async def admit_submission(
    gateway: Services, token: Token, endpoint: Endpoint, raw: bytes, origin: str | None = None
) -> tuple[Submission, Admission]:
    """Prepare the body under the key's policy and admit it (one Redis round trip, unless the
    cached policy turns out stale: then it is read again once)."""
    for _ in range(2):
        rules = await gateway.policies.rules(token)
        effective_policy = rules.effective()
        check_origin(effective_policy, origin)
        submission = await prepare(
            endpoint,
            raw,
            effective_policy,
            gateway.settings.max_data_uri_bytes,
            gateway.links.original,
        )
        try:
            return submission, await gateway.admitter.admit(token, rules, submission)
        except StalePolicy:
            gateway.policies.forget(token)
    raise StoreUnavailable("The key's policy is changing; try again")


async def submit(request: Request) -> Response:
    gateway = services(request)
    token = parse_authorization(request.headers.get("authorization"))
    endpoint = endpoint_or_404(request.path_params["endpoint"])
    webhook_url = request.query_params.get("fal_webhook") or None
    if webhook_url is not None:
        await _check_webhook(gateway, webhook_url)
    submission, admission = await admit_submission(
        gateway, token, endpoint, await request.body(), request.headers.get("origin")
    )

    async def refund() -> None:
        await gateway.meter.settle(
            token.team_id,
            token.key_id,
            admission.reservation_id,
            outcome=REFUSED,
            endpoint_id=endpoint.id,
        )

    try:
        relay_url = f"{gateway.links.public_url}/webhooks/fal?{urlencode({'team': token.team_id})}"
        response = await gateway.upstream.submit(
            endpoint.id, submission.body, forwarded_headers(request.headers), relay_url
        )
        gateway.upstream.check("submit", response)
        body = json_body(response)
    except FalError:
        await refund()
        raise
    if not response.is_success:
        await refund()
        return relay(response, gateway.links.rewrite(body))
    await gateway.requests.record(
        token.team_id,
        token.key_id,
        body["request_id"],
        endpoint,
        admission.reservation_id,
        webhook_url,
    )
    relayed = relay(response, gateway.links.rewrite_queue_body(body, endpoint.app_id))
    relayed.headers.update(submission_headers(submission, admission))
    return relayed


def _note_completion(gateway: Services, owned: OwnedRequest, status: Any) -> None:
    if not owned.settled and isinstance(status, dict) and status.get("status") == "COMPLETED":
        gateway.completion.schedule(Job.of(owned))


async def status(request: Request) -> Response:
    gateway, owned = await _owned(request)
    response = await gateway.upstream.status(owned.app_id, owned.id, _wants_logs(request))
    gateway.upstream.check("status", response)
    body = json_body(response)
    _note_completion(gateway, owned, body)
    return relay(response, gateway.links.rewrite_queue_body(body, owned.app_id))


async def status_stream(request: Request) -> Response:
    """Relay fal's status events one by one as they arrive, URLs rewritten."""
    gateway, owned = await _owned(request)
    stack = contextlib.AsyncExitStack()
    upstream = await stack.enter_async_context(
        gateway.upstream.status_stream(owned.app_id, owned.id, _wants_logs(request))
    )
    try:
        if not upstream.is_success:
            await upstream.aread()
            gateway.upstream.check("status_stream", upstream)
            return relay(upstream, gateway.links.rewrite(json_body(upstream)))
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
                        status = json.loads(event.data)
                        _note_completion(gateway, owned, status)
                        data = gateway.links.rewrite_queue_body(status, owned.app_id)
                        yield {"data": json.dumps(data)}
            except UpstreamError:
                logger.warning("status stream of %s broke off upstream", owned.id)

    return EventSourceResponse(events(), headers={"x-fal-request-id": owned.id})


async def result(request: Request) -> Response:
    gateway, owned = await _owned(request)
    response = await gateway.upstream.result(owned.app_id, owned.id)
    gateway.upstream.check("result", response)
    if response.status_code == 200 and not owned.settled:
        await gateway.meter.settle_from_result(Job.of(owned), response)
    return relay(response, gateway.links.rewrite(json_body(response)))


async def cancel(request: Request) -> Response:
    gateway, owned = await _owned(request)
    response = await gateway.upstream.cancel(owned.app_id, owned.id)
    gateway.upstream.check("cancel", response)
    body = json_body(response)
    if response.status_code == 200 and isinstance(body, dict) and body.get("status") == "OK":
        await gateway.meter.settle_job(Job.of(owned), FAILED)  # left the queue before any work
    return relay(response, gateway.links.rewrite(body))


ROUTES = queue_routes(
    submit=submit, status=status, status_stream=status_stream, result=result, cancel=cancel
)
