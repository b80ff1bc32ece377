"""The operator's console (``/console``): sign in with the admin token; the overview."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.console.pages import page
from gateway.console.sessions import CONSOLE, Session
from gateway.http.pages import (
    layout,
    recent_usage,
    session_routes,
    signed_in,
)
from gateway.http.services import Services
from gateway.relay.queue import DeliveryQueue

NAV = (
    ("/console", "Overview"),
    ("/console/teams", "Teams"),
    ("/console/prices", "Prices"),
    ("/console/keys", "Keys"),
    ("/console/usage", "Usage"),
    ("/console/jobs", "Jobs"),
    ("/console/accounts", "fal accounts"),
)


def area(session: Session, here: str) -> dict[str, Any]:
    """What every console page's layout needs."""
    return layout(CONSOLE, NAV, session, here)


async def overview(request: Request, gateway: Services, session: Session) -> Response:
    teams = await gateway.teams.all()
    now = time.time()
    accounts = [view.public(now) for view in await gateway.accounts.accounts.views()]
    backlog, oldest = await DeliveryQueue(gateway.store, gateway.outbox, "console", 0).depth()
    return page(
        "console/overview.html",
        title="Overview",
        **area(session, "/console"),
        teams=len(teams),
        balance=sum(team.balance_micros for team in teams),
        reserved=sum(team.reserved_micros for team in teams),
        **await recent_usage(gateway, [team.id for team in teams]),
        accounts=accounts,
        failures=await gateway.accounts.failures.recent(1),
        usable=sum(1 for account in accounts if account["state"] == "active"),
        backlog=backlog,
        oldest_minutes=int(oldest // 60),
    )


ROUTES = [
    Route("/console", signed_in(CONSOLE, overview), methods=["GET"]),
    *session_routes(CONSOLE),
]
