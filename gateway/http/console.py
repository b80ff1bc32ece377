"""The operator's console (``/console``): sign in with the admin token; the overview."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.console.charts import bar_chart
from gateway.console.pages import page
from gateway.console.sessions import CONSOLE, Session
from gateway.http.pages import (
    AREA_TITLES,
    sign_in,
    sign_in_form,
    sign_out,
    signed_in,
    static,
)
from gateway.http.services import Services
from gateway.limits.usage import days, usage_rows
from gateway.relay.queue import DeliveryQueue

NAV = (
    ("/console", "Overview"),
    ("/console/teams", "Teams"),
    ("/console/keys", "Keys"),
    ("/console/usage", "Usage"),
    ("/console/jobs", "Jobs"),
    ("/console/accounts", "fal accounts"),
)
DAYS = 14


def money(micros: int) -> str:
    """Micro-units as currency units: two decimals, up to six under a cent (what one image
    costs)."""
    if 0 < abs(micros) < 10_000:
        return f"{micros / 1_000_000:.6f}".rstrip("0")
    return f"{micros / 1_000_000:,.2f}"


def area(session: Session, here: str) -> dict[str, Any]:
    """What every console page's layout needs."""
    return {
        "area": CONSOLE,
        "area_title": AREA_TITLES[CONSOLE],
        "session": session,
        "nav": NAV,
        "here": here,
        "money": money,
    }


async def overview(request: Request, gateway: Services, session: Session) -> Response:
    teams = await gateway.teams.all()
    today = datetime.now(UTC).date()
    start = today - timedelta(days=DAYS - 1)
    rows = await usage_rows(
        gateway.redis, [team.id for team in teams], start, today, group_by=["day"]
    )
    by_day = {row["day"]: row for row in rows}
    span = [day.isoformat() for day in days(start, today)]
    jobs = [(day, float(by_day.get(day, {}).get("requests", 0))) for day in span]
    spend = [(day, by_day.get(day, {}).get("cost_micros", 0) / 1_000_000) for day in span]
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
        days=DAYS,
        jobs_total=int(sum(value for _, value in jobs)),
        spend_total=sum(int(row.get("cost_micros", 0)) for row in rows),
        jobs_chart=bar_chart(jobs, "Jobs per day"),
        spend_chart=bar_chart(spend, "Spend per day"),
        accounts=accounts,
        usable=sum(1 for account in accounts if account["state"] == "active"),
        backlog=backlog,
        oldest_minutes=int(oldest // 60),
    )


ROUTES = [
    Route("/console", signed_in(CONSOLE, overview), methods=["GET"]),
    Route("/console/signin", sign_in_form(CONSOLE), methods=["GET"]),
    Route("/console/signin", sign_in(CONSOLE), methods=["POST"]),
    Route("/console/signout", sign_out(CONSOLE), methods=["POST"]),
    Route("/console/static/{name}", static(CONSOLE), methods=["GET"]),
]
