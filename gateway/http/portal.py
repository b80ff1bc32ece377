"""The customers' portal (``/portal``): sign in with a gateway key; what that key may see."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.console.pages import page
from gateway.console.sessions import PORTAL, Session
from gateway.errors import NotFound
from gateway.http.pages import (
    layout,
    recent_usage,
    session_routes,
    signed_in,
)
from gateway.http.services import Services

NAV = (
    ("/portal", "Overview"),
    ("/portal/jobs", "Jobs"),
    ("/portal/deliveries", "Webhooks"),
    ("/portal/playground", "Playground"),
)


def area(session: Session, here: str) -> dict[str, Any]:
    """What every portal page's layout needs."""
    return layout(PORTAL, NAV, session, here)


async def home(request: Request, gateway: Services, session: Session) -> Response:
    key = await gateway.keys.get(session.key_id)
    team = await gateway.teams.get(session.team_id)
    if key is None or team is None:
        raise NotFound("Key not found")
    return page(
        "portal/home.html",
        title="Overview",
        **area(session, "/portal"),
        key=key.public()
        | {"spent_micros": key.spent_micros, "reserved_micros": key.reserved_micros},
        team=team.public(),
        **await recent_usage(gateway, [session.team_id], key.id),
    )


ROUTES = [
    Route("/portal", signed_in(PORTAL, home), methods=["GET"]),
    *session_routes(PORTAL),
]
