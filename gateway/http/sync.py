"""``POST /sync/{owner}/{app}[/{subpath}]``: fal.run through the gateway.

Admitted and metered exactly like a queue submit; the caller's connection is held until fal
answers with the output, which is charged at once. If the caller hangs up first, the call to fal
is dropped (fal cancels the run) and the reservation refunded.
"""

from __future__ import annotations

import asyncio
import dataclasses

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.keys import parse_authorization
from gateway.errors import FalError
from gateway.http.queue import (
    admit_submission,
    endpoint_or_404,
    relay,
    submission_headers,
)
from gateway.http.services import services
from gateway.jobs.finisher import Job
from gateway.limits.settlement import FAILED, REFUSED
from gateway.upstream.client import forwarded_headers, json_body
from gateway.web.disconnect import hung_up

CANCELLED = "cancelled"


async def run(request: Request) -> Response:
    gateway = services(request)
    token = parse_authorization(request.headers.get("authorization"))
    endpoint = endpoint_or_404(request.path_params["endpoint"])
    submission, admission = await admit_submission(
        gateway, token, endpoint, await request.body(), request.headers.get("origin")
    )
    job = Job(token.team_id, token.key_id, admission.reservation_id, "", endpoint.id)

    call = asyncio.ensure_future(
        gateway.upstream.run(endpoint.id, submission.body, forwarded_headers(request.headers))
    )
    gone = asyncio.ensure_future(hung_up(request))
    await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not call.done():
        call.cancel()  # closing the connection makes fal cancel the run
        await asyncio.gather(call, return_exceptions=True)
        await gateway.meter.settle_job(job, CANCELLED)
        return Response(status_code=499)
    try:
        response = call.result()
        gateway.upstream.check("run", response)
        body = json_body(response)
    except FalError:
        await gateway.meter.settle_job(job, REFUSED)
        raise
    job = dataclasses.replace(job, request_id=response.headers.get("x-fal-request-id", ""))
    if response.status_code == 200:
        await gateway.meter.settle_output(job, body)
    else:
        await gateway.meter.settle_job(job, FAILED)
    relayed = relay(response, gateway.links.rewrite(body))
    relayed.headers.update(submission_headers(submission, admission))
    return relayed


ROUTES = [Route("/sync/{endpoint:path}", run, methods=["POST"])]
