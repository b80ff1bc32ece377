"""``POST /sync/{owner}/{app}[/{subpath}]``: fal.run through the gateway.

Admitted and metered exactly like a queue submit; the caller's connection is held until fal
answers with the output, which is charged at once. If the caller hangs up first, the call to fal
is dropped (fal cancels the run) and the reservation refunded.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.queue import accepted_response, job_call
from gateway.http.services import services
from gateway.jobs.submit import HungUp
from gateway.web.disconnect import hung_up


async def run(request: Request) -> Response:
    svc = services(request)
    try:
        accepted = await svc.submitter.run(await job_call(svc, request), hung_up(request))
    except HungUp:
        return Response(status_code=499)
    return accepted_response(svc, accepted, svc.links.rewrite(accepted.body))


ROUTES = [Route("/sync/{endpoint:path}", run, methods=["POST"])]
