"""The console's keys: the list filtered by team and state, creating one (its secret and webhook
secret shown on the answer page only), a key's page with its limits, revocation, a new webhook
secret (shown once too) and its webhook deliveries. Forms are read with the admin API's own
models (``KeyCreate``, ``KeyLimits``)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.keys import ApiKey, rfc3339
from gateway.accounts.tokens import DEFAULT_TEAM
from gateway.console.forms import form_fields
from gateway.console.sessions import CONSOLE, Session
from gateway.errors import NotFound
from gateway.http.admin import KeyCreate
from gateway.http.console_view import back, policy_context, posted, posted_policy, view
from gateway.http.pages import require_csrf, signed_in
from gateway.http.services import Services
from gateway.policy.limits import KeyLimits

STATES = ("active", "expired", "revoked")


def state(key: ApiKey, now: float) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if key.status != "active":
        return "revoked"
    return "active" if key.usable(now) else "expired"


async def list_keys(
    request: Request, gateway: Services, session: Session, **context: Any
) -> Response:
    team_id = request.query_params.get("team_id") or ""
    wanted = request.query_params.get("state") or ""
    now = time.time()
    keys = [
        key.public() | {"state": state(key, now)}
        for key in await gateway.keys.all()
        if (not team_id or key.team_id == team_id) and (not wanted or state(key, now) == wanted)
    ]
    form = context.pop("form", {"team_id": team_id})
    return view(
        request,
        session,
        "/console/keys",
        "console/keys.html",
        title="Keys",
        keys=keys,
        team_ids=await gateway.teams.ids(),
        team_id=team_id,
        states=STATES,
        state=wanted,
        create_fields=form_fields(KeyCreate, form, ["name", "expires_at"])
        + form_fields(KeyLimits, form),
        chosen_team=form.get("team_id") or "",
        **context,
    )


async def create_key(request: Request, gateway: Services, session: Session) -> Response:
    form, spec, error = await posted(request, session, KeyCreate)
    if spec is None:
        return await list_keys(request, gateway, session, form=form, error=error)
    if spec.team_id == DEFAULT_TEAM:
        await gateway.teams.ensure(DEFAULT_TEAM)
    elif await gateway.teams.get(spec.team_id) is None:
        return await list_keys(request, gateway, session, form=form, error="No such team")
    expires = spec.expires_at.timestamp() if spec.expires_at else None
    limits = spec.model_dump(include=set(KeyLimits.model_fields))
    key, secret, webhook_secret = await gateway.keys.create(
        spec.name, spec.team_id, expires, spec.policy, limits
    )
    return view(
        request,
        session,
        "/console/keys",
        "console/key_secret.html",
        title="Key created",
        key=key.public(),
        secrets=[("API key", "secret", secret), ("Webhook secret", "webhook", webhook_secret)],
        notice=f"Key {key.name} created",
    )


async def _key(request: Request, gateway: Services) -> ApiKey:
    key = await gateway.keys.get(str(request.path_params["key_id"]))
    if key is None:
        raise NotFound("Key not found")
    return key


async def show_key(
    request: Request, gateway: Services, session: Session, **context: Any
) -> Response:
    key = await _key(request, gateway)
    deliveries = await gateway.outbox.for_key(key.team_id, key.id, None)
    return view(
        request,
        session,
        "/console/keys",
        "console/key.html",
        title=key.name,
        key=key.public() | {"state": state(key, time.time())},
        limit_fields=form_fields(KeyLimits, context.pop("limits_form", None) or key.limits),
        **policy_context(key.policy, context.pop("policy", None)),
        deliveries=deliveries[:50],
        **context,
    )


async def revoke_key(request: Request, gateway: Services, session: Session) -> Response:
    await require_csrf(request, session)
    key = await gateway.keys.revoke((await _key(request, gateway)).id)
    if key is None:
        raise NotFound("Key not found")
    return back(f"/console/keys/{key.id}", f"Key {key.name} revoked")


async def rotate_webhook_secret(request: Request, gateway: Services, session: Session) -> Response:
    await require_csrf(request, session)
    key = await _key(request, gateway)
    rotated = await gateway.keys.rotate_webhook_secret(
        key.id, gateway.settings.webhook_secret_grace
    )
    if rotated is None:
        raise NotFound("Key not found")
    secret, until = rotated
    return view(
        request,
        session,
        "/console/keys",
        "console/key_secret.html",
        title="New webhook secret",
        key=key.public(),
        secrets=[("Webhook secret", "webhook", secret)],
        notice=f"New webhook secret; the previous one also signs until {rfc3339(until)}",
    )


async def update_limits(request: Request, gateway: Services, session: Session) -> Response:
    form, spec, error = await posted(request, session, KeyLimits, blank_is_none=True)
    if spec is None:
        return await show_key(request, gateway, session, limits_form=form, error=error)
    key = await gateway.keys.update_limits(
        (await _key(request, gateway)).id, spec.model_dump(exclude_unset=True)
    )
    if key is None:
        raise NotFound("Key not found")
    return back(f"/console/keys/{key.id}", "Limits saved")


async def update_policy(request: Request, gateway: Services, session: Session) -> Response:
    text, policy, error = await posted_policy(request, session)
    if policy is None:
        return await show_key(request, gateway, session, policy=text, error=error)
    key = await gateway.keys.set_policy((await _key(request, gateway)).id, policy)
    if key is None:
        raise NotFound("Key not found")
    return back(f"/console/keys/{key.id}", "Policy saved")


ROUTES = [
    Route("/console/keys", signed_in(CONSOLE, list_keys), methods=["GET"]),
    Route("/console/keys", signed_in(CONSOLE, create_key), methods=["POST"]),
    Route("/console/keys/{key_id}", signed_in(CONSOLE, show_key), methods=["GET"]),
    Route("/console/keys/{key_id}/revoke", signed_in(CONSOLE, revoke_key), methods=["POST"]),
    Route(
        "/console/keys/{key_id}/webhook-secret",
        signed_in(CONSOLE, rotate_webhook_secret),
        methods=["POST"],
    ),
    Route("/console/keys/{key_id}/limits", signed_in(CONSOLE, update_limits), methods=["POST"]),
    Route("/console/keys/{key_id}/policy", signed_in(CONSOLE, update_policy), methods=["POST"]),
]
