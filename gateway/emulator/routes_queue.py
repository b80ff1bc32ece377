"""HTTP handlers of the emulated queue (``queue.fal.run``) and sync (``fal.run``) APIs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.catalog import Endpoint, find_endpoint
from gateway.emulator.auth import fingerprint, require_key, require_unlocked
from gateway.emulator.jobs import Job, JobState
from gateway.emulator.protocol import status_body, submit_body
from gateway.emulator.service import Emulator
from gateway.errors import BadRequest, NotFound
from gateway.protocol.routes import catch_all_routes, request_routes
from gateway.web.disconnect import hung_up

REQUEST_ID_HEADER = "X-Fal-Request-Id"
_TRUE = {"1", "true"}


def caller(request: Request) -> tuple[Emulator, str]:
    """The emulator and the fingerprint of the caller's key (401 unless the key is accepted)."""
    emulator: Emulator = request.app.state.emulator
    key = require_key(request.headers.get("authorization"), emulator.settings.keys)
    return emulator, fingerprint(key)


def emulator_of(request: Request) -> Emulator:
    """The emulator, for a caller whose key it accepts."""
    return caller(request)[0]


def paying_caller(request: Request) -> tuple[Emulator, str]:
    """``caller`` for a billable call (submit, run, upload): 403 when the key's account is
    locked."""
    emulator, account = caller(request)
    require_unlocked(account, emulator.knobs.locked_keys)
    return emulator, account


def base_url(request: Request, emulator: Emulator) -> str:
    """The public base of URLs handed back to this caller."""
    return emulator.settings.public_url or str(request.base_url).rstrip("/")


def _endpoint(path: str) -> Endpoint:
    endpoint = find_endpoint(path)
    if endpoint is None:
        raise NotFound(f"Application '{path}' not found", error_type="application_not_found")
    return endpoint


def _start_timeout(request: Request) -> float | None:
    raw = request.headers.get("x-fal-request-timeout")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise BadRequest("X-Fal-Request-Timeout must be a positive number of seconds")
    return seconds


def _job(request: Request) -> tuple[Emulator, Job]:
    """The caller's job named in the path (404 if unknown or another key's)."""
    emulator, account = caller(request)
    params = request.path_params
    return emulator, emulator.find(
        f"{params['owner']}/{params['app']}", params["request_id"], account
    )


def _wants_logs(request: Request) -> bool:
    return request.query_params.get("logs", "0").lower() in _TRUE


async def _new_job(request: Request, *, queued: bool) -> tuple[Emulator, Job]:
    """A job for the submitted body; queued jobs have status and result URLs, sync ones not."""
    emulator, account = paying_caller(request)
    job = await emulator.submit(
        _endpoint(request.path_params["endpoint"]),
        await request.body(),
        base_url(request, emulator),
        account=account,
        webhook_url=request.query_params.get("fal_webhook") if queued else None,
        start_timeout=_start_timeout(request),
        register=queued,
    )
    return emulator, job


async def submit(request: Request) -> Response:
    emulator, job = await _new_job(request, queued=True)
    body = submit_body(job, emulator.queue.position(job))
    return JSONResponse(body, headers={REQUEST_ID_HEADER: job.id})


def _status(emulator: Emulator, job: Job, logs: list[dict[str, Any]] | None) -> dict[str, Any]:
    return status_body(job, emulator.queue.position(job), logs)


async def status(request: Request) -> Response:
    emulator, job = _job(request)
    body = _status(emulator, job, list(job.logs) if _wants_logs(request) else None)
    code = 200 if job.state is JobState.COMPLETED else 202
    return JSONResponse(body, status_code=code, headers={REQUEST_ID_HEADER: job.id})


async def status_stream(request: Request) -> Response:
    """Server-sent status events until COMPLETED, then the stream closes.

    Each event carries the full status; with ``logs=1`` its ``logs`` hold only the lines added
    since the previous event, as fal-js accumulates them across events.
    """
    emulator, job = _job(request)
    with_logs = _wants_logs(request)

    async def events() -> AsyncIterator[dict[str, str]]:
        sent = 0
        while True:
            version = job.version
            logs = job.logs[sent:] if with_logs else None
            sent = len(job.logs)
            yield {"data": json.dumps(_status(emulator, job, logs))}
            if job.state is JobState.COMPLETED:
                return
            await job.changed_since(version)

    return EventSourceResponse(events(), headers={REQUEST_ID_HEADER: job.id})


async def result(request: Request) -> Response:
    _, job = _job(request)
    if job.outcome is None:
        raise BadRequest("Request is still in progress", error_type="request_in_progress")
    return outcome_response(job)


def outcome_response(job: Job) -> Response:
    outcome = job.outcome
    assert outcome is not None
    headers = {REQUEST_ID_HEADER: job.id, **outcome.headers}
    if outcome.error_type is not None:
        headers["X-Fal-Error-Type"] = outcome.error_type
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


async def cancel(request: Request) -> Response:
    emulator, job = _job(request)
    code, body = await emulator.cancel(job)
    return JSONResponse(body, status_code=code, headers={REQUEST_ID_HEADER: job.id})


async def run_sync(request: Request) -> Response:
    """``fal.run``: the caller waits for the output; hanging up cancels the job."""
    emulator, job = await _new_job(request, queued=False)
    finished = asyncio.ensure_future(_completion(job))
    gone = asyncio.ensure_future(hung_up(request))
    await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
    finished.cancel()
    gone.cancel()
    if job.outcome is None:
        await emulator.cancel(job)
        return Response(status_code=499)
    return outcome_response(job)


async def _completion(job: Job) -> None:
    while job.state is not JobState.COMPLETED:
        await job.changed_since(job.version)


ROUTES = [
    Route("/sync/{endpoint:path}", run_sync, methods=["POST"]),
    *request_routes(status=status, status_stream=status_stream, result=result, cancel=cancel),
    *catch_all_routes(submit),
]
