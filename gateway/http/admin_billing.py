"""``GET /admin/v1/reconciliation``: the gateway's charges against what fal billed, by day and
endpoint, with the jobs whose figures disagree (``limits.reconciliation``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.keys import rfc3339
from gateway.http.admin import admin, query
from gateway.limits.exports import usage_log_rows
from gateway.limits.reconciliation import ReconciliationQuery, reconcile
from gateway.web.jsoncodec import JSONResponse


async def reconciliation(request: Request) -> Response:
    """``?from=&to=&tolerance=&limit=``: every team's settled requests in the range, matched
    against fal's billable units."""
    gateway = admin(request)
    report = query(request, ReconciliationQuery)
    rows = usage_log_rows(gateway.redis, await gateway.teams.ids(), report)
    span = {"from": rfc3339(report.first_ms() / 1000), "to": rfc3339(report.last_ms() / 1000)}
    return JSONResponse({**span, **await reconcile(rows, report)})


ROUTES = [Route("/admin/v1/reconciliation", reconciliation, methods=["GET"])]
