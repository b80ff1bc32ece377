"""``POST /webhooks/fal``: fal's completion webhooks, verified, then the job finished, then 200.

The gateway registers ``{public url}/webhooks/fal?team=<team>`` with fal instead of the caller's
URL. A webhook is answered 200 only once the job's end is recorded (settled, final status kept,
the caller's webhook queued: one script), so fal's own retries cover a crash before that; a
duplicate (fal retrying, or a replay within the signature window) is answered 200 and delivered
no second time.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.errors import BadRequest, Unauthorized
from gateway.http.services import services
from gateway.relay.fal_signature import WebhookRejected, verify
from gateway.web import jsoncodec
from gateway.web.jsoncodec import JSONResponse


async def fal_webhook(request: Request) -> Response:
    svc = services(request)
    body = await request.body()
    team_id = request.query_params.get("team", "")
    try:
        request_id = await verify(
            svc.fal_keys, request.headers, body, svc.settings.webhook_tolerance
        )
    except WebhookRejected as exc:
        svc.metrics.fal_webhooks.labels("rejected").inc()
        raise Unauthorized(str(exc), error_type="invalid_webhook") from exc
    try:
        event = jsoncodec.loads(body)
    except ValueError as exc:
        raise BadRequest("webhook body is not JSON") from exc
    if not isinstance(event, dict) or event.get("request_id") != request_id:
        raise BadRequest("webhook body does not match its signed request id")
    owned = None
    if re.fullmatch(TEAM_ID_PATTERN, team_id):
        owned = await svc.requests.lookup(team_id, request_id)
    if owned is None:
        svc.metrics.fal_webhooks.labels("unknown").inc()
        return JSONResponse({"status": "ignored"})
    finished = await svc.finisher.finish_from_webhook(owned, event)
    fresh = finished.delivery != "duplicate"
    svc.metrics.fal_webhooks.labels("accepted" if fresh else "duplicate").inc()
    return JSONResponse({"status": "accepted" if fresh else "duplicate"})


ROUTES = [Route("/webhooks/fal", fal_webhook, methods=["POST"])]
