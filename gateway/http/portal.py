"""The customers' portal (``/portal``): sign in with a gateway key; what that key may see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.console.charts import bar_chart, daily_series
from gateway.console.pages import page
from gateway.console.sessions import PORTAL, Session
from gateway.errors import NotFound
from gateway.http.console import money
from gateway.http.pages import AREA_TITLES, sign_in, sign_in_form, sign_out, signed_in, static
from gateway.http.services import Services
from gateway.limits.usage import days, usage_rows

NAV = (
    ("/portal", "Overview"),
    ("/portal/jobs", "Jobs"),
    ("/portal/deliveries", "Webhooks"),
    ("/portal/playground", "Playground"),
)
DAYS = 14


def area(session: Session, here: str) -> dict[str, Any]:
    """What every portal page's layout needs."""
    return {
        "area": PORTAL,
        "area_title": AREA_TITLES[PORTAL],
        "session": session,
        "nav": NAV,
        "here": here,
        "money": cost,
    }


def cost(micros: int) -> str:
    """Micro-units as currency units: two decimals, or as many as a cost under a cent needs."""
    if micros == 0 or abs(micros) >= 10_000:
        return money(micros)
    return f"{micros / 1_000_000:.6f}".rstrip("0")


async def home(request: Request, gateway: Services, session: Session) -> Response:
    key = await gateway.keys.get(session.key_id)
    team = await gateway.teams.get(session.team_id)
    if key is None or team is None:
        raise NotFound("Key not found")
    today = datetime.now(UTC).date()
    start = today - timedelta(days=DAYS - 1)
    rows = await usage_rows(
        gateway.redis, [session.team_id], start, today, key_id=key.id, group_by=["day"]
    )
    jobs, spend = daily_series(rows, (day.isoformat() for day in days(start, today)))
    return page(
        "portal/home.html",
        title="Overview",
        **area(session, "/portal"),
        key=key.public()
        | {"spent_micros": key.spent_micros, "reserved_micros": key.reserved_micros},
        team=team.public(),
        days=DAYS,
        jobs_total=int(sum(value for _, value in jobs)),
        spend_total=sum(int(row["cost_micros"]) for row in rows),
        jobs_chart=bar_chart(jobs, "Jobs per day"),
        spend_chart=bar_chart(spend, "Spend per day"),
    )


ROUTES = [
    Route("/portal", signed_in(PORTAL, home), methods=["GET"]),
    Route("/portal/signin", sign_in_form(PORTAL), methods=["GET"]),
    Route("/portal/signin", sign_in(PORTAL), methods=["POST"]),
    Route("/portal/signout", sign_out(PORTAL), methods=["POST"]),
    Route("/portal/static/{name}", static(PORTAL), methods=["GET"]),
]
