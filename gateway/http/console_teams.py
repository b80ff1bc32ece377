"""The console's teams: the list with balances and caps, creating one, a team's page with its
ledger, credit and debit with a note, its limits and price multiplier, its own prices and its
low-balance webhook. Forms are read with the admin API's own models (``TeamCreate``, ``Credit``,
``TeamLimits``, ``PriceTerms``, ``AlertWebhook``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.teams import Team
from gateway.accounts.tokens import new_id
from gateway.catalog import CATALOG
from gateway.console.forms import form_fields
from gateway.console.sessions import CONSOLE, Session
from gateway.errors import FalError, RequestValidationFailed
from gateway.http.admin_teams import (
    AlertWebhook,
    Credit,
    TeamCreate,
    set_alert_webhook,
    team_id_of,
)
from gateway.http.console_prices import team_price_context
from gateway.http.console_view import back, policy_context, posted, posted_policy, view
from gateway.http.pages import require_csrf, signed_in
from gateway.http.services import Services
from gateway.limits.credits import add_credit
from gateway.policy.limits import TeamLimits
from gateway.prices.model import PriceTerms

LEDGER_SHOWN = 50


def limit_values(team: Team) -> dict[str, Any]:
    """The team's limits as ``TeamLimits`` names them."""
    public = team.public()
    return {
        **team.limits,
        "price_multiplier": public["price_multiplier"],
        "sync_hangup": team.sync_hangup,
        "failed_job": team.failed_job,
        "cancelled_running": team.cancelled_running,
    }


async def list_teams(
    request: Request, gateway: Services, session: Session, **context: Any
) -> Response:
    form = context.pop("form", {})
    return view(
        request,
        session,
        "/console/teams",
        "console/teams.html",
        title="Teams",
        teams=[team.public() for team in await gateway.teams.all()],
        create_fields=form_fields(TeamCreate, form, ["id", "name"])
        + form_fields(TeamCreate, form, TeamLimits.model_fields),
        **context,
    )


async def create_team(request: Request, gateway: Services, session: Session) -> Response:
    form, spec, error = await posted(request, session, TeamCreate)
    if spec is None:
        return await list_teams(request, gateway, session, form=form, error=error)
    limits = TeamLimits.model_validate(spec.model_dump(include=set(TeamLimits.model_fields)))
    team = await gateway.teams.create(spec.id or new_id(10), spec.name, limits)
    if team is None:
        return await list_teams(
            request, gateway, session, form=form, error="A team with this id exists"
        )
    return back(f"/console/teams/{team.id}", f"Team {team.name} created")


async def show_team(
    request: Request, gateway: Services, session: Session, **context: Any
) -> Response:
    team = await gateway.teams.require(team_id_of(request))
    limits_form = context.pop("limits_form", None)
    prices = await team_price_context(gateway, team, context.pop("price_form", None))
    keys = [key.public() for key in await gateway.keys.all() if key.team_id == team.id]
    return view(
        request,
        session,
        "/console/teams",
        "console/team.html",
        title=team.name,
        team=team.public(),
        keys=keys,
        ledger=await gateway.teams.ledger(team.id, LEDGER_SHOWN),
        credit_fields=form_fields(Credit, context.pop("credit_form", {})),
        limit_fields=form_fields(TeamLimits, limits_form or limit_values(team)),
        alert_fields=form_fields(
            AlertWebhook, context.pop("alert_form", None) or {"url": team.alert_webhook_url}
        ),
        **policy_context(team.policy, context.pop("policy", None)),
        **prices,
        **context,
    )


async def credit_team(request: Request, gateway: Services, session: Session) -> Response:
    form, spec, error = await posted(request, session, Credit)
    team = await gateway.teams.require(team_id_of(request))
    if spec is None:
        return await show_team(request, gateway, session, credit_form=form, error=error)
    try:
        entry = await add_credit(gateway.scripts, team, spec.amount_micros, spec.note)
    except RequestValidationFailed as exc:
        return await show_team(request, gateway, session, credit_form=form, error=exc.messages)
    verb = "Credited" if spec.amount_micros > 0 else "Debited"
    return back(f"/console/teams/{team.id}", f"{verb}; balance {entry['balance_micros'] / 1e6:.2f}")


async def update_limits(request: Request, gateway: Services, session: Session) -> Response:
    form, spec, error = await posted(request, session, TeamLimits, blank_is_none=True)
    team_id = team_id_of(request)
    if spec is None:
        return await show_team(request, gateway, session, limits_form=form, error=error)
    try:
        await gateway.teams.update_limits(team_id, spec.model_dump(exclude_unset=True))
    except FalError as exc:
        return await show_team(request, gateway, session, limits_form=form, error=str(exc))
    return back(f"/console/teams/{team_id}", "Limits saved")


async def update_alert_webhook(request: Request, gateway: Services, session: Session) -> Response:
    form, spec, error = await posted(request, session, AlertWebhook)
    team = await gateway.teams.require(team_id_of(request))
    if form.get("remove"):
        await gateway.teams.remove_alert_webhook(team.id)
        return back(f"/console/teams/{team.id}", "Alert webhook removed")
    if spec is None:
        return await show_team(request, gateway, session, alert_form=form, error=error)
    try:
        secret = await set_alert_webhook(gateway, team.id, spec.url)
    except RequestValidationFailed as exc:
        return await show_team(request, gateway, session, alert_form=form, error=exc.messages)
    return view(
        request,
        session,
        "/console/teams",
        "console/key_secret.html",
        title="Alert webhook secret",
        team=team.public(),
        secrets=[("Alert webhook secret", "alert", secret)],
        notice=f"Low-balance alerts of {team.name} go to {spec.url}",
    )


async def update_policy(request: Request, gateway: Services, session: Session) -> Response:
    text, policy, error = await posted_policy(request, session)
    team_id = team_id_of(request)
    if policy is None:
        return await show_team(request, gateway, session, policy=text, error=error)
    await gateway.teams.set_policy(team_id, policy)
    return back(f"/console/teams/{team_id}", "Policy saved")


async def set_price(request: Request, gateway: Services, session: Session) -> Response:
    form, terms, error = await posted(request, session, PriceTerms)
    team_id, endpoint_id = team_id_of(request), str(form.get("endpoint", ""))
    await gateway.teams.require(team_id)
    if endpoint_id not in CATALOG:
        error = "Endpoint: choose one the gateway serves"
    if terms is None or error:
        return await show_team(request, gateway, session, price_form=form, error=error)
    await gateway.prices.set_team_price(team_id, endpoint_id, terms)
    return back(f"/console/teams/{team_id}", f"Own price of {endpoint_id} set")


async def clear_price(request: Request, gateway: Services, session: Session) -> Response:
    form = await require_csrf(request, session)
    team_id, endpoint_id = team_id_of(request), str(form.get("endpoint", ""))
    await gateway.teams.require(team_id)
    if endpoint_id in CATALOG:
        await gateway.prices.clear_team_price(team_id, endpoint_id)
    return back(f"/console/teams/{team_id}", f"Own price of {endpoint_id} cleared")


ROUTES = [
    Route("/console/teams", signed_in(CONSOLE, list_teams), methods=["GET"]),
    Route("/console/teams", signed_in(CONSOLE, create_team), methods=["POST"]),
    Route("/console/teams/{team_id}", signed_in(CONSOLE, show_team), methods=["GET"]),
    Route("/console/teams/{team_id}/credits", signed_in(CONSOLE, credit_team), methods=["POST"]),
    Route("/console/teams/{team_id}/limits", signed_in(CONSOLE, update_limits), methods=["POST"]),
    Route("/console/teams/{team_id}/policy", signed_in(CONSOLE, update_policy), methods=["POST"]),
    Route("/console/teams/{team_id}/prices", signed_in(CONSOLE, set_price), methods=["POST"]),
    Route(
        "/console/teams/{team_id}/prices/clear", signed_in(CONSOLE, clear_price), methods=["POST"]
    ),
    Route(
        "/console/teams/{team_id}/alert-webhook",
        signed_in(CONSOLE, update_alert_webhook),
        methods=["POST"],
    ),
]
