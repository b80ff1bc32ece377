"""The console's prices: each endpoint's catalog, current and scheduled prices, a form to set
one (now or at a time) and cancelling a scheduled one; and what a team's page shows of its own
prices. Forms are read with the admin API's own models (``PriceSet``, ``PriceTerms``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.teams import Team
from gateway.catalog import CATALOG
from gateway.console.forms import form_fields
from gateway.console.sessions import CONSOLE, Session
from gateway.errors import FalError
from gateway.http.admin_prices import price_version
from gateway.http.console_view import back, posted, view
from gateway.http.pages import require_csrf, signed_in
from gateway.http.services import Services
from gateway.prices.model import PriceSet, PriceTerms
from gateway.prices.table import team_listing

TERMS = tuple(PriceTerms.model_fields)


async def list_prices(
    request: Request, gateway: Services, session: Session, **context: Any
) -> Response:
    form = context.pop("form", {})
    return view(
        request,
        session,
        "/console/prices",
        "console/prices.html",
        title="Prices",
        **await gateway.prices.listing(),
        endpoint_ids=tuple(CATALOG),
        chosen=form.get("endpoint", ""),
        set_fields=form_fields(PriceSet, form, [*TERMS, "effective_at", "note"]),
        **context,
    )


async def set_price(request: Request, gateway: Services, session: Session) -> Response:
    form, change, error = await posted(request, session, PriceSet)
    if change is None:
        return await list_prices(request, gateway, session, form=form, error=error)
    entry = await gateway.prices.set(change)
    when = "now" if entry["state"] == "current" else f"from {entry['effective_at']}"
    return back(
        "/console/prices", f"Price of {change.endpoint} set, {when} (version {entry['version']})"
    )


async def cancel_price(request: Request, gateway: Services, session: Session) -> Response:
    await require_csrf(request, session)
    version = price_version(request)
    try:
        await gateway.prices.cancel(version)
    except FalError as exc:
        return await list_prices(request, gateway, session, error=exc.detail)
    return back("/console/prices", f"Price version {version} cancelled")


async def team_price_context(
    gateway: Services, team: Team, form: dict[str, Any] | None
) -> dict[str, Any]:
    """What a team's page shows of its prices: per endpoint what it pays before its multiplier,
    and the form to set its own price of one."""
    book = await gateway.prices.book()
    return {
        "prices": team_listing(book, team.prices, gateway.prices.now()),
        "endpoint_ids": tuple(CATALOG),
        "price_endpoint": (form or {}).get("endpoint", ""),
        "price_fields": form_fields(PriceTerms, form or {}),
    }


ROUTES = [
    Route("/console/prices", signed_in(CONSOLE, list_prices), methods=["GET"]),
    Route("/console/prices", signed_in(CONSOLE, set_price), methods=["POST"]),
    Route("/console/prices/{version}/cancel", signed_in(CONSOLE, cancel_price), methods=["POST"]),
]
