"""The admin API (``/admin/v1``), behind ``Authorization: Bearer <GATEWAY_ADMIN_TOKEN>``."""

from __future__ import annotations

import hmac
import json
import re
import time
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.accounts.keys import ApiKey
from gateway.accounts.tokens import DEFAULT_TEAM, TEAM_ID_PATTERN
from gateway.errors import NotFound, RequestValidationFailed, Unauthorized
from gateway.services import Services, services
from gateway.submission.policy import Policy

Body = TypeVar("Body", bound=BaseModel)
TeamId = Annotated[str, Field(pattern=f"^{TEAM_ID_PATTERN}$")]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    team_id: TeamId = DEFAULT_TEAM
    expires_at: AwareDatetime | None = None
    policy: Policy = Field(default_factory=Policy)

    @field_validator("expires_at")
    @classmethod
    def _in_future(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        if value is not None and value.timestamp() <= time.time():
            raise ValueError("expires_at must be in the future")
        return value


def _admin(request: Request) -> Services:
    gateway = services(request)
    token = gateway.settings.admin_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if (
        token is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())
    ):
        raise Unauthorized("Admin token missing or invalid")
    return gateway


async def _body(request: Request, model: type[Body]) -> Body:
    try:
        return model.model_validate(json.loads(await request.body() or b"null"))
    except json.JSONDecodeError as exc:
        raise RequestValidationFailed(
            [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]
        ) from exc
    except ValidationError as exc:
        raise RequestValidationFailed.from_pydantic(exc) from exc


def _key_or_404(key: ApiKey | None) -> ApiKey:
    if key is None:
        raise NotFound("Key not found")
    return key


async def create_key(request: Request) -> Response:
    gateway = _admin(request)
    spec = await _body(request, KeyCreate)
    expires = spec.expires_at.timestamp() if spec.expires_at else None
    key, secret = await gateway.keys.create(spec.name, spec.team_id, expires, spec.policy)
    body: dict[str, Any] = {**key.public(), "secret": secret}
    return JSONResponse(body, status_code=201)


async def list_keys(request: Request) -> Response:
    gateway = _admin(request)
    return JSONResponse({"keys": [key.public() for key in await gateway.keys.list()]})


async def show_key(request: Request) -> Response:
    gateway = _admin(request)
    key = _key_or_404(await gateway.keys.get(request.path_params["key_id"]))
    return JSONResponse(key.public())


async def revoke_key(request: Request) -> Response:
    gateway = _admin(request)
    key = _key_or_404(await gateway.keys.revoke(request.path_params["key_id"]))
    return JSONResponse(key.public())


async def set_key_policy(request: Request) -> Response:
    gateway = _admin(request)
    policy = await _body(request, Policy)
    key = _key_or_404(await gateway.keys.set_policy(request.path_params["key_id"], policy))
    return JSONResponse(key.public())


def _team_id(request: Request) -> str:
    team_id = request.path_params["team_id"]
    if not re.fullmatch(TEAM_ID_PATTERN, team_id):
        raise NotFound("Team not found")
    return str(team_id)


async def show_team(request: Request) -> Response:
    gateway = _admin(request)
    return JSONResponse(await gateway.teams.public(_team_id(request)))


async def set_team_policy(request: Request) -> Response:
    gateway = _admin(request)
    team_id = _team_id(request)
    await gateway.teams.set_policy(team_id, await _body(request, Policy))
    return JSONResponse(await gateway.teams.public(team_id))


ROUTES = [
    Route("/admin/v1/keys", create_key, methods=["POST"]),
    Route("/admin/v1/keys/{key_id}/policy", set_key_policy, methods=["PUT"]),
    Route("/admin/v1/teams/{team_id}", show_team, methods=["GET"]),
    Route("/admin/v1/teams/{team_id}/policy", set_team_policy, methods=["PUT"]),
    Route("/admin/v1/keys", list_keys, methods=["GET"]),
    Route("/admin/v1/keys/{key_id}", show_key, methods=["GET"]),
    Route("/admin/v1/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
]
