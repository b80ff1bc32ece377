"""The admin API for teams, their credit and ledger, and usage reports."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.teams import TeamId
from gateway.accounts.tokens import TEAM_ID_PATTERN, new_id
from gateway.errors import BadRequest, FalError, RequestValidationFailed
from gateway.http.admin import admin, body, path_name, query
from gateway.http.services import Services
from gateway.limits.credits import add_credit
from gateway.limits.usage import GROUPS, usage_rows
from gateway.policy.limits import MAX_MICROS, TeamLimits
from gateway.policy.model import Policy
from gateway.relay.targets import TargetRefused
from gateway.web.jsoncodec import JSONResponse


class TeamCreate(TeamLimits):
    id: TeamId | None = None
    """Chosen by the reseller, or generated."""
    name: Annotated[str, Field(min_length=1, max_length=200)]


class Credit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_micros: Annotated[int, Field(ge=-MAX_MICROS, le=MAX_MICROS)]
    """Positive to add credit, negative to take it away."""
    note: Annotated[str, Field(max_length=500)] = ""

    @field_validator("amount_micros")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("amount_micros must not be 0")
        return value


class AlertWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2000)]
    """Where the team's low-balance alerts go (https; signed like a key's webhooks)."""


async def set_alert_webhook(gateway: Services, team_id: str, url: str) -> str:
    """Send ``team_id``'s low-balance alerts to ``url`` (422 when no webhook may go there);
    the new signing secret, shown only now."""
    try:
        gateway.targets.check_url(url, "url")
    except TargetRefused as exc:
        raise RequestValidationFailed(
            [{"loc": ["body", "url"], "msg": str(exc), "type": "value_error"}]
        ) from exc
    return await gateway.teams.set_alert_webhook(team_id, url)


class LedgerQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=10_000)] = 100


def team_id_of(request: Request) -> str:
    """The path's team id (404 when it cannot be one)."""
    return path_name(request, "team_id", TEAM_ID_PATTERN, "Team not found")


async def create_team(request: Request) -> Response:
    gateway = admin(request)
    spec = await body(request, TeamCreate)
    limits = TeamLimits.model_validate(spec.model_dump(include=set(TeamLimits.model_fields)))
    team = await gateway.teams.create(spec.id or new_id(10), spec.name, limits)
    if team is None:
        raise FalError("A team with this id exists", status_code=409, error_type="conflict")
    return JSONResponse(team.public(), status_code=201)


async def list_teams(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse({"teams": [team.public() for team in await gateway.teams.all()]})


async def show_team(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse((await gateway.teams.require(team_id_of(request))).public())


async def update_team_limits(request: Request) -> Response:
    gateway = admin(request)
    changes = (await body(request, TeamLimits)).model_dump(exclude_unset=True)
    return JSONResponse((await gateway.teams.update_limits(team_id_of(request), changes)).public())


async def set_team_policy(request: Request) -> Response:
    gateway = admin(request)
    policy = await body(request, Policy)
    return JSONResponse((await gateway.teams.set_policy(team_id_of(request), policy)).public())


async def credit_team(request: Request) -> Response:
    gateway = admin(request)
    spec = await body(request, Credit)
    team = await gateway.teams.require(team_id_of(request))
    entry = await add_credit(gateway.scripts, team, spec.amount_micros, spec.note)
    return JSONResponse({"entry": entry, "balance_micros": entry["balance_micros"]}, 201)


async def put_alert_webhook(request: Request) -> Response:
    gateway = admin(request)
    spec = await body(request, AlertWebhook)
    secret = await set_alert_webhook(gateway, team_id_of(request), spec.url)
    return JSONResponse({"url": spec.url, "secret": secret})


async def delete_alert_webhook(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse((await gateway.teams.remove_alert_webhook(team_id_of(request))).public())


async def team_ledger(request: Request) -> Response:
    gateway = admin(request)
    team_id = team_id_of(request)
    await gateway.teams.require(team_id)
    limit = query(request, LedgerQuery).limit
    return JSONResponse({"entries": await gateway.teams.ledger(team_id, limit)})


def _day_param(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD)") from exc


async def usage(request: Request) -> Response:
    """Usage rows: ``team_id``, ``key_id``, ``endpoint`` filter; ``from``/``to`` (days, UTC,
    default today); ``group_by`` a comma-separated subset of day, team_id, key_id, endpoint."""
    gateway = admin(request)
    params = request.query_params
    today = datetime.now(UTC).date()
    group_by = [g for g in params.get("group_by", ",".join(GROUPS)).split(",") if g]
    unknown = sorted(set(group_by) - set(GROUPS))
    if unknown:
        raise BadRequest(f"group_by accepts {', '.join(GROUPS)}; not {', '.join(unknown)}")
    team_ids = [params["team_id"]] if params.get("team_id") else await gateway.teams.ids()
    key_id = params.get("key_id")
    if key_id and not params.get("team_id"):
        key = await gateway.keys.get(key_id)
        team_ids = [key.team_id] if key else []
    rows = await usage_rows(
        gateway.redis,
        team_ids,
        _day_param(request, "from", today),
        _day_param(request, "to", today),
        key_id=key_id,
        endpoint=params.get("endpoint"),
        group_by=group_by,
    )
    return JSONResponse({"usage": rows})


ROUTES = [
    Route("/admin/v1/teams", create_team, methods=["POST"]),
    Route("/admin/v1/teams", list_teams, methods=["GET"]),
    Route("/admin/v1/teams/{team_id}", show_team, methods=["GET"]),
    Route("/admin/v1/teams/{team_id}", update_team_limits, methods=["PATCH"]),
    Route("/admin/v1/teams/{team_id}/policy", set_team_policy, methods=["PUT"]),
    Route("/admin/v1/teams/{team_id}/credits", credit_team, methods=["POST"]),
    Route("/admin/v1/teams/{team_id}/ledger", team_ledger, methods=["GET"]),
    Route("/admin/v1/teams/{team_id}/alert-webhook", put_alert_webhook, methods=["PUT"]),
    Route("/admin/v1/teams/{team_id}/alert-webhook", delete_alert_webhook, methods=["DELETE"]),
    Route("/admin/v1/usage", usage, methods=["GET"]),
]
