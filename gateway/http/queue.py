"""fal's queue API at the gateway's root: submit, status, status stream, result, cancel.

Each handler parses the call, hands it to ``jobs`` and renders the answer as fal would, with
every URL pointing at the gateway.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from gateway.accounts.requests import OwnedRequest
from gateway.catalog import Endpoint, find_endpoint
from gateway.errors import NotFound
from gateway.http.access import allowed_caller, check_browser_origin
from gateway.http.services import Services, services
from gateway.jobs.submit import Accepted, Call
from gateway.protocol.routes import catch_all_routes, request_routes
from gateway.upstream.client import REQUEST_ID_HEADER, forwarded_headers, json_body, relayed_headers
from gateway.web import jsoncodec
from gateway.web.jsoncodec import JSONResponse

logger = logging.getLogger(__name__)

ESTIMATE_HEADER = "X-Gateway-Estimated-Cost-Micros"
"""fal's list price of the request as forwarded, in micro-units (before any reseller margin)."""
IGNORED_FIELDS_HEADER = "X-Gateway-Ignored-Fields"
"""Comma-separated paths of body fields the endpoint does not have (percent-encoded where not
plain ASCII); they were not forwarded."""
IGNORED_COUNT_HEADER = "X-Gateway-Ignored-Fields-Count"
"""How many fields were ignored; the list names the first ``MAX_IGNORED_LISTED``."""
MAX_IGNORED_LISTED = 50
MAX_IGNORED_NAME = 128
RESERVED_HEADER = "X-Gateway-Reserved-Micros"
STREAM_SHUTDOWN_MARGIN = 1.0
"""Seconds before the end of ``shutdown_timeout`` at which status streams still open are ended
(sse-starlette notices the signal up to 0.5 s late)."""
"""Credit held for the request (list price times the team's multiplier) until it settles."""


def endpoint_or_404(path: str) -> Endpoint:
    endpoint = find_endpoint(path)
    if endpoint is None:
        raise NotFound(f"Application '{path}' not found", error_type="application_not_found")
    return endpoint


def wants_logs(query: str | None) -> bool:
    return (query or "0").lower() in ("1", "true")


def relay(response: httpx.Response, body: Any) -> Response:
    return JSONResponse(body, status_code=response.status_code, headers=relayed_headers(response))


def accepted_response(svc: Services, accepted: Accepted, body: Any) -> Response:
    """fal's answer to an admitted submit or run, with the gateway's cost headers."""
    relayed = relay(accepted.response, body)
    if not accepted.response.is_success:
        return relayed
    submission, admission = accepted.submission, accepted.admission
    relayed.headers.update(
        {
            ESTIMATE_HEADER: str(submission.estimate.cost_micros),
            RESERVED_HEADER: str(admission.cost_micros),
            **admission.headers,
        }
    )
    if submission.ignored_fields:
        # Field names come from the caller and may be any text; header values must be latin-1.
        # Bounded, so that a body of many unknown fields cannot make a header no client reads.
        listed = submission.ignored_fields[:MAX_IGNORED_LISTED]
        relayed.headers[IGNORED_FIELDS_HEADER] = ",".join(
            quote(name[:MAX_IGNORED_NAME], safe="._-~") for name in listed
        )
        relayed.headers[IGNORED_COUNT_HEADER] = str(len(submission.ignored_fields))
    return relayed


async def _owned(request: Request) -> tuple[Services, OwnedRequest]:
    """The services and the caller's own request named in the path (else 401/404)."""
    svc = services(request)
    params = request.path_params
    app_id, request_id = f"{params['owner']}/{params['app']}", params["request_id"]
    owned = await svc.requests.authorize(request.headers.get("authorization"), app_id, request_id)
    await check_browser_origin(svc, request)
    return svc, owned


async def job_call(svc: Services, request: Request) -> Call:
    """A submit or sync run as the caller made it: the key is checked (401, 403) before the
    body is read; 404 for an endpoint the catalog does not have."""
    token = await allowed_caller(svc, request)
    return Call(
        token=token,
        endpoint=endpoint_or_404(request.path_params["endpoint"]),
        body=await request.body(),
        headers=forwarded_headers(request.headers),
    )


async def submit(request: Request) -> Response:
    svc = services(request)
    call = await job_call(svc, request)
    accepted = await svc.submitter.submit(call, request.query_params.get("fal_webhook") or None)
    if accepted.response.is_success:
        body = svc.links.rewrite_queue_body(accepted.body, call.endpoint.app_id)
    else:
        body = svc.links.rewrite(accepted.body)
    return accepted_response(svc, accepted, body)


async def status(request: Request) -> Response:
    svc, owned = await _owned(request)
    return await status_answer(svc, owned, wants_logs(request.query_params.get("logs")))


async def status_answer(svc: Services, owned: OwnedRequest, logs: bool) -> Response:
    """The answer to a status poll of the caller's own request."""
    view = await svc.job_status.poll(owned, logs)
    return JSONResponse(view.body, status_code=view.status_code, headers=view.headers)


async def status_stream(request: Request) -> Response:
    """Relay fal's status events as they arrive, URLs rewritten, from the one upstream stream
    all watchers of the request share (or, for a request known to be finished, its final status
    as the one event)."""
    svc, owned = await _owned(request)
    logs = wants_logs(request.query_params.get("logs"))
    known = svc.job_status.known(owned, logs)
    if known is not None:
        return EventSourceResponse(
            iter([{"data": jsoncodec.dumps(known)}]), headers={REQUEST_ID_HEADER: owned.id}
        )
    watch = await svc.streams.watch(owned, logs)
    if watch.refused is not None:
        response, body = watch.refused
        svc.upstream.check("status_stream", response, owned.account)
        return relay(response, svc.links.rewrite(body))
    # On SIGTERM sse-starlette would end every stream at once; a stream instead runs on to its
    # job's end, and is ended cleanly a margin before uvicorn cancels what is still open.
    grace = max(0, svc.settings.shutdown_timeout - STREAM_SHUTDOWN_MARGIN)
    return EventSourceResponse(
        watch.events,
        headers={REQUEST_ID_HEADER: owned.id},
        background=BackgroundTask(watch.close),
        shutdown_grace_period=grace,
    )


async def result(request: Request) -> Response:
    svc, owned = await _owned(request)
    response, body = await fetch_result(svc, owned)
    return relay(response, body)


async def fetch_result(svc: Services, owned: OwnedRequest) -> tuple[httpx.Response, Any]:
    """fal's answer for the result of ``owned`` (on the account that took it), and its body
    with every file URL a gateway link."""
    credential = await svc.accounts.credential(owned.account)
    response = await svc.upstream.result(credential, owned.app_id, owned.id)
    svc.upstream.check("result", response, credential.account)
    await svc.job_status.result_seen(owned, response)
    return response, svc.links.rewrite(json_body(response))


async def cancel(request: Request) -> Response:
    svc, owned = await _owned(request)
    credential = await svc.accounts.credential(owned.account)
    await svc.job_status.cancelling(owned)
    response = await svc.upstream.cancel(credential, owned.app_id, owned.id)
    svc.upstream.check("cancel", response, credential.account)
    body = json_body(response)
    await svc.job_status.cancelled(owned, response.status_code, body)
    return relay(response, svc.links.rewrite(body))


REQUEST_ROUTES = request_routes(
    status=status, status_stream=status_stream, result=result, cancel=cancel
)
"""Mounted first: nothing else has their shape, and status polls are most of the traffic."""
CATCH_ALL_ROUTES = catch_all_routes(submit)
"""Mounted last."""
