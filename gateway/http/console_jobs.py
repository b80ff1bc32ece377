"""The console's jobs: recent requests per team (``limits.recent_jobs``), and a job's page: its
record, its status history, its settlement, its result images (fetched from fal on the account
the job ran on, as the queue API's result does, with every file URL made a gateway link) and
its webhook deliveries, a dead one replayable."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.requests import OwnedRequest
from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.catalog.outputs import output_images
from gateway.console.history import history
from gateway.console.sessions import CONSOLE, Session
from gateway.errors import FalError, NotFound
from gateway.http.admin import path_name
from gateway.http.console_view import back, view
from gateway.http.pages import require_csrf, signed_in
from gateway.http.queue import fetch_result
from gateway.http.services import Services
from gateway.limits.recent_jobs import recent_jobs, settlement
from gateway.limits.settlement import CHARGED, HUNG_UP

LISTED = 50
"""Jobs listed, newest first."""


async def list_jobs(request: Request, gateway: Services, session: Session) -> Response:
    team_id = request.query_params.get("team_id") or ""
    team_ids = await gateway.teams.ids()
    return view(
        request,
        session,
        "/console/jobs",
        "console/jobs.html",
        title="Jobs",
        team_ids=team_ids,
        team_id=team_id,
        jobs=await recent_jobs(gateway.redis, [team_id] if team_id else team_ids, LISTED),
    )


async def result_images(gateway: Services, job: OwnedRequest) -> tuple[list[Any], str | None]:
    """The job's output images (their URLs gateway links), or why there are none."""
    try:
        response, body = await fetch_result(gateway, job)
    except FalError as exc:
        return [], str(exc.detail)
    if not response.is_success or not isinstance(body, dict):
        return [], f"fal answered {response.status_code} for the result"
    return output_images(body), None


async def show_job(request: Request, gateway: Services, session: Session) -> Response:
    team_id = path_name(request, "team_id", TEAM_ID_PATTERN, "Job not found")
    request_id = str(request.path_params["request_id"])
    job = await gateway.requests.lookup(team_id, request_id)
    settled = await settlement(gateway.redis, team_id, request_id)
    if job is None and settled is None:
        raise NotFound("Job not found")
    images: list[Any] = []
    problem = None
    if job is not None and (settled or {}).get("outcome") in (CHARGED, HUNG_UP):
        images, problem = await result_images(gateway, job)
    elif job is not None and settled is None:
        problem = "The job has not finished"
    key_id = job.key_id if job else str(settled and settled["key_id"])
    deliveries = [
        delivery
        for delivery in await gateway.outbox.for_key(team_id, key_id, None)
        if delivery["request_id"] == request_id
    ]
    record: dict[str, Any] = {"team_id": team_id, "request_id": request_id, "key_id": key_id}
    if job is not None:
        record |= {
            "endpoint": job.endpoint_id,
            "fal account": job.account or "(default)",
            "settled": "yes" if job.settled else "no",
            "webhook": "yes" if job.webhook else "no",
        }
    return view(
        request,
        session,
        "/console/jobs",
        "console/job.html",
        title=f"Job {request_id}",
        record=record,
        settled=settled,
        images=images,
        image_problem=problem,
        deliveries=deliveries,
        history=history(job, settled["outcome"] if settled else None) if job else None,
    )


async def replay_delivery(request: Request, gateway: Services, session: Session) -> Response:
    await require_csrf(request, session)
    delivery_id = str(request.path_params["delivery_id"])
    team_id = await gateway.outbox.team_of(delivery_id)
    replayed = await gateway.outbox.replay(team_id, delivery_id) if team_id else None
    if replayed is None:
        raise NotFound("Delivery not found")
    where = f"/console/jobs/{replayed['team_id']}/{replayed['request_id']}"
    return back(where, "Delivery queued again")


ROUTES = [
    Route("/console/jobs", signed_in(CONSOLE, list_jobs), methods=["GET"]),
    Route("/console/jobs/{team_id}/{request_id}", signed_in(CONSOLE, show_job), methods=["GET"]),
    Route(
        "/console/deliveries/{delivery_id}/replay",
        signed_in(CONSOLE, replay_delivery),
        methods=["POST"],
    ),
]
