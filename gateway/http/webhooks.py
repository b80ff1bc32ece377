"""``POST /webhooks/fal``: fal's completion webhooks, verified, settled, stored, then 200.

The gateway registers ``{public url}/webhooks/fal?team=<team>`` with fal instead of the caller's
URL. A webhook is answered 200 only once its delivery is stored, so fal's own retries cover a
crash before that; a duplicate (fal retrying, or a replay within the signature window) is
answered 200 and delivered no second time.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.errors import BadRequest, Unauthorized
from gateway.http.services import services
from gateway.jobs.finisher import Job
from gateway.limits.settlement import FAILED
from gateway.relay.fal_signature import WebhookRejected, verify
from gateway.web import jsoncodec
from gateway.web.jsoncodec import JSONResponse

# fal's payload fields relayed to the caller (fal-protocol.md §6).
RELAYED_FIELDS = ("request_id", "gateway_request_id", "status", "payload", "error", "payload_error")


def caller_payload(event: dict[str, Any]) -> dict[str, Any]:
    return {name: event[name] for name in RELAYED_FIELDS if name in event}


def completed_status(request_id: str) -> dict[str, Any]:
    """fal's status of a request that succeeded, as polls are answered once its webhook came.
    (A failure's status carries fal's ``error`` and ``error_type``, which the webhook does not
    state in the same form, so polls of failed requests keep asking fal until they see it.)"""
    return {"status": "COMPLETED", "request_id": request_id, "logs": None, "metrics": {}}


async def fal_webhook(request: Request) -> Response:
    gateway = services(request)
    body = await request.body()
    team_id = request.query_params.get("team", "")
    try:
        request_id = await verify(
            gateway.fal_keys, request.headers, body, gateway.settings.webhook_tolerance
        )
    except WebhookRejected as exc:
        gateway.metrics.fal_webhooks.labels("rejected").inc()
        raise Unauthorized(str(exc), error_type="invalid_webhook") from exc
    try:
        event = jsoncodec.loads(body)
    except ValueError as exc:
        raise BadRequest("webhook body is not JSON") from exc
    if not isinstance(event, dict) or event.get("request_id") != request_id:
        raise BadRequest("webhook body does not match its signed request id")
    owned = None
    if re.fullmatch(TEAM_ID_PATTERN, team_id):
        owned = await gateway.requests.lookup(team_id, request_id)
    if owned is None:
        gateway.metrics.fal_webhooks.labels("unknown").inc()
        return JSONResponse({"status": "ignored"})
    succeeded = event.get("status") == "OK"
    if not owned.settled:
        job = Job.of(owned)
        if succeeded:
            await gateway.meter.settle_output(job, event.get("payload"))
        else:
            await gateway.meter.settle_job(job, FAILED)
    if succeeded and owned.final_status is None:
        await gateway.requests.complete(team_id, request_id, completed_status(request_id))
    fresh = True
    if owned.webhook_url:
        relayed = jsoncodec.dumps(gateway.links.rewrite(caller_payload(event)))
        fresh = await gateway.outbox.enqueue(
            owned.team_id, owned.key_id, request_id, owned.webhook_url, relayed
        )
    gateway.metrics.fal_webhooks.labels("accepted" if fresh else "duplicate").inc()
    return JSONResponse({"status": "accepted" if fresh else "duplicate"})


ROUTES = [Route("/webhooks/fal", fal_webhook, methods=["POST"])]
