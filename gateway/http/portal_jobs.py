"""The portal's jobs and webhook deliveries: only the signed-in key's own. Another key's
request is a 404 page, exactly as the API answers it (``RequestRegistry.of_key``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.requests import OwnedRequest
from gateway.catalog import find_endpoint
from gateway.catalog.outputs import output_images
from gateway.console.history import history
from gateway.console.pages import page
from gateway.console.playground import example
from gateway.console.sessions import PORTAL, Session
from gateway.errors import FalError
from gateway.http.pages import signed_in
from gateway.http.portal import area
from gateway.http.queue import fetch_result
from gateway.http.services import Services
from gateway.limits.recent_jobs import IN_FLIGHT, recent_jobs, reservation

LISTED = 50
REFRESH_SECONDS = 1
"""How often a job page still running reloads itself (``<meta http-equiv="refresh">``)."""
RUNNING = ("IN_QUEUE", "IN_PROGRESS")


async def jobs(request: Request, gateway: Services, session: Session) -> Response:
    found = await recent_jobs(gateway.redis, [session.team_id], LISTED, session.key_id)
    return page(
        "portal/jobs.html",
        title="Jobs",
        **area(session, "/portal/jobs"),
        jobs=found,
        in_flight=IN_FLIGHT,
    )


async def job(request: Request, gateway: Services, session: Session) -> Response:
    request_id = request.path_params["request_id"]
    owned = await gateway.requests.of_key(session.team_id, session.key_id, request_id)
    view: dict[str, Any] = {"status": None, "images": [], "problem": None}
    try:
        view |= await _progress(gateway, owned)
    except FalError as exc:
        view["problem"] = str(exc.detail)
    held = await reservation(gateway.redis, session.team_id, owned.reservation_id)
    endpoint = find_endpoint(owned.endpoint_id)
    code = example(gateway.settings.public_url, endpoint) if endpoint else {}
    return page(
        "portal/job.html",
        title=f"Job {owned.id}",
        **area(session, "/portal/jobs"),
        job=owned,
        held=held,
        history=history(owned, held.get("outcome") if held.get("state") == "settled" else None),
        refresh=REFRESH_SECONDS if view["status"] in RUNNING else None,
        snippets=code,
        **view,
    )


async def _progress(gateway: Services, owned: OwnedRequest) -> dict[str, Any]:
    """The job's status and, once it is done, its images (gateway links) or fal's error."""
    status = await gateway.job_status.poll(owned, False)
    state = status.body.get("status") if isinstance(status.body, dict) else None
    if state != "COMPLETED":
        return {"status": state}
    response, body = await fetch_result(gateway, owned)
    if not response.is_success or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else None
        return {"status": "FAILED", "problem": _said(detail) or f"fal answered {response}"}
    return {"status": state, "images": output_images(body)}


def _said(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", item)) for item in detail if isinstance(item, dict))
    return str(detail or "")


async def deliveries(request: Request, gateway: Services, session: Session) -> Response:
    found = await gateway.outbox.for_key(session.team_id, session.key_id, None)
    return page(
        "portal/deliveries.html",
        title="Webhook deliveries",
        **area(session, "/portal/deliveries"),
        deliveries=found[:LISTED],
    )


ROUTES = [
    Route("/portal/jobs", signed_in(PORTAL, jobs), methods=["GET"]),
    Route("/portal/jobs/{request_id}", signed_in(PORTAL, job), methods=["GET"]),
    Route("/portal/deliveries", signed_in(PORTAL, deliveries), methods=["GET"]),
]
