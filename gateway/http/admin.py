"""The admin API (``/admin/v1``), behind ``Authorization: Bearer <GATEWAY_ADMIN_TOKEN>``: keys.

Teams, credit and usage are in ``admin_teams``; this module also holds what every admin handler
shares (the token check and body parsing).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.keys import ApiKey, future_moment
from gateway.accounts.teams import TeamId
from gateway.accounts.tokens import DEFAULT_TEAM
from gateway.catalog.endpoints import decode_body
from gateway.errors import NotFound, RequestValidationFailed, Unauthorized
from gateway.http.services import Services, services
from gateway.policy.limits import KeyLimits
from gateway.policy.model import Policy
from gateway.web.jsoncodec import JSONResponse

Body = TypeVar("Body", bound=BaseModel)


class KeyCreate(KeyLimits):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    team_id: TeamId = DEFAULT_TEAM
    expires_at: AwareDatetime | None = None
    policy: Policy = Field(default_factory=Policy)

    @field_validator("expires_at")
    @classmethod
    def _in_future(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        return future_moment("expires_at", value)


def admin(request: Request) -> Services:
    """The services, if the caller presents the admin token (else 401)."""
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


async def body(request: Request, model: type[Body]) -> Body:
    """The JSON body as ``model``, or fal's 422 (strict JSON, at most 1024 levels deep)."""
    data = decode_body(await request.body() or b"null")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationFailed.from_pydantic(exc) from exc


def query(request: Request, model: type[Body]) -> Body:
    """The query parameters as ``model``, or fal's 422."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationFailed.from_pydantic(exc, root="query") from exc


def path_name(request: Request, param: str, pattern: str, missing: str) -> str:
    """The path parameter ``param``; a 404 saying ``missing`` when it cannot match
    ``pattern`` (so no such record exists)."""
    value = str(request.path_params[param])
    if not re.fullmatch(pattern, value):
        raise NotFound(missing)
    return value


def _key_or_404(key: ApiKey | None) -> ApiKey:
    if key is None:
        raise NotFound("Key not found")
    return key


async def create_key(request: Request) -> Response:
    gateway = admin(request)
    spec = await body(request, KeyCreate)
    if spec.team_id == DEFAULT_TEAM:
        await gateway.teams.ensure(DEFAULT_TEAM)
    else:
        await gateway.teams.require(spec.team_id)
    expires = spec.expires_at.timestamp() if spec.expires_at else None
    limits = spec.model_dump(include=set(KeyLimits.model_fields))
    key, secret, webhook_secret = await gateway.keys.create(
        spec.name, spec.team_id, expires, spec.policy, limits
    )
    created: dict[str, Any] = {**key.public(), "secret": secret, "webhook_secret": webhook_secret}
    return JSONResponse(created, status_code=201)


async def list_keys(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse({"keys": [key.public() for key in await gateway.keys.all()]})


async def show_key(request: Request) -> Response:
    gateway = admin(request)
    key = _key_or_404(await gateway.keys.get(request.path_params["key_id"]))
    return JSONResponse(key.public())


async def update_key_limits(request: Request) -> Response:
    gateway = admin(request)
    changes = (await body(request, KeyLimits)).model_dump(exclude_unset=True)
    key = await gateway.keys.update_limits(request.path_params["key_id"], changes)
    return JSONResponse(_key_or_404(key).public())


async def revoke_key(request: Request) -> Response:
    gateway = admin(request)
    key = _key_or_404(await gateway.keys.revoke(request.path_params["key_id"]))
    return JSONResponse(key.public())


async def set_key_policy(request: Request) -> Response:
    gateway = admin(request)
    policy = await body(request, Policy)
    key = _key_or_404(await gateway.keys.set_policy(request.path_params["key_id"], policy))
    return JSONResponse(key.public())


ROUTES = [
    Route("/admin/v1/keys", create_key, methods=["POST"]),
    Route("/admin/v1/keys", list_keys, methods=["GET"]),
    Route("/admin/v1/keys/{key_id}", show_key, methods=["GET"]),
    Route("/admin/v1/keys/{key_id}", update_key_limits, methods=["PATCH"]),
    Route("/admin/v1/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    Route("/admin/v1/keys/{key_id}/policy", set_key_policy, methods=["PUT"]),
]
