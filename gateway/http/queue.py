"""fal's queue API at the gateway's root: submit, status, status stream, result, cancel.

Each handler authenticates the caller, calls fal with the reseller's key and hands back fal's
answer with every URL pointing at the gateway.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from httpx_sse import EventSource
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

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
from gateway.http.services import Services, services
from gateway.jobs.finisher import Job
from gateway.jobs.prepare import Submission, prepare
from gateway.limits.admission import Admission, StalePolicy
from gateway.limits.settlement import FAILED, REFUSED
from gateway.policy.checks import check_origin
from gateway.protocol.routes import catch_all_routes, request_routes
from gateway.relay.targets import TargetRefused
from gateway.upstream.client import (
    REQUEST_ID_HEADER,
    forwarded_headers,
    json_body,
    relayed_headers,
)
from gateway.web import jsoncodec
from gateway.web.jsoncodec import JSONResponse

logger = logging.getLogger(__name__)

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


def relay(response: httpx.Response, body: Any) -> Response:
    return JSONResponse(body, status_code=response.status_code, headers=relayed_headers(response))


async def _owned(request: Request) -> tuple[Services, OwnedRequest]:
    """The services and the caller's own request named in the path (else 401/404)."""
    gateway = services(request)
    params = request.path_params
    app_id, request_id = f"{params['owner']}/{params['app']}", params["request_id"]
    owned = await gateway.requests.authorize(
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
    if isinstance(status, dict) and status.get("status") == "COMPLETED":
        gateway.completion.completed(owned, status)


def _known_status(gateway: Services, owned: OwnedRequest, logs: bool) -> Any | None:
    """The request's final status from the gateway's own records, when it is known and the
    caller did not ask for logs (those only fal has); else None."""
    if owned.final_status is None or logs:
        return None
    gateway.metrics.status_from_state.inc()
    return gateway.links.rewrite_queue_body(owned.final_status, owned.app_id)


async def status(request: Request) -> Response:
    gateway, owned = await _owned(request)
    return await status_answer(gateway, owned, _wants_logs(request))


async def status_answer(gateway: Services, owned: OwnedRequest, logs: bool) -> Response:
    """The answer to a status poll of the caller's own request: from the gateway's record when
    it knows the request finished, else fal's (shared with concurrent polls)."""
    known = _known_status(gateway, owned, logs)
    if known is not None:
        return JSONResponse(known, headers={REQUEST_ID_HEADER: owned.id})
    answer, shared = await gateway.statuses.status(owned.app_id, owned.id, logs)
    gateway.metrics.status_answers.labels("shared" if shared else "upstream").inc()
    _note_completion(gateway, owned, answer.body)
    return JSONResponse(
        gateway.links.rewrite_queue_body(answer.body, owned.app_id),
        status_code=answer.status_code,
        headers=answer.headers,
    )


async def status_stream(request: Request) -> Response:
    """Relay fal's status events one by one as they arrive, URLs rewritten (or, for a request
    known to be finished, its final status as the one event)."""
    gateway, owned = await _owned(request)
    known = _known_status(gateway, owned, _wants_logs(request))
    if known is not None:
        return EventSourceResponse(
            iter([{"data": jsoncodec.dumps(known)}]), headers={REQUEST_ID_HEADER: owned.id}
        )
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
                        status = jsoncodec.loads(event.data)
                        _note_completion(gateway, owned, status)
                        data = gateway.links.rewrite_queue_body(status, owned.app_id)
                        yield {"data": jsoncodec.dumps(data)}
            except UpstreamError:
                logger.warning("status stream of %s broke off upstream", owned.id)

    return EventSourceResponse(events(), headers={REQUEST_ID_HEADER: owned.id})


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
    gateway.statuses.forget(owned.app_id, owned.id)
    gateway.upstream.check("cancel", response)
    body = json_body(response)
    if response.status_code == 200 and isinstance(body, dict) and body.get("status") == "OK":
        await gateway.meter.settle_job(Job.of(owned), FAILED)  # left the queue before any work
    return relay(response, gateway.links.rewrite(body))


REQUEST_ROUTES = request_routes(
    status=status, status_stream=status_stream, result=result, cancel=cancel
)
"""Mounted first: nothing else has their shape, and status polls are most of the traffic."""
CATCH_ALL_ROUTES = catch_all_routes(submit)
"""Mounted last."""
