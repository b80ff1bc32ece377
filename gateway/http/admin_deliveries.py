"""The admin API for webhook deliveries and keys' webhook secrets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.keys import rfc3339
from gateway.errors import BadRequest, NotFound
from gateway.http.admin import admin
from gateway.relay.outbox import DEAD
from gateway.web.jsoncodec import JSONResponse


async def list_deliveries(request: Request) -> Response:
    """A key's deliveries, newest first, with attempts and last error (``status`` filters)."""
    gateway = admin(request)
    key_id = request.query_params.get("key_id")
    if not key_id:
        raise BadRequest("key_id is required")
    key = await gateway.keys.get(key_id)
    if key is None:
        raise NotFound("Key not found")
    found = await gateway.outbox.for_key(key.team_id, key.id, request.query_params.get("status"))
    return JSONResponse({"deliveries": found})


async def replay_delivery(request: Request) -> Response:
    gateway = admin(request)
    delivery_id = request.path_params["delivery_id"]
    team_id = await gateway.outbox.team_of(delivery_id)
    replayed = await gateway.outbox.replay(team_id, delivery_id) if team_id else None
    if replayed is None:
        raise NotFound("Delivery not found")
    return JSONResponse(replayed)


async def replay_dead(request: Request) -> Response:
    """Queue again every dead-lettered delivery of ``?key_id=``."""
    gateway = admin(request)
    key_id = request.query_params.get("key_id")
    key = await gateway.keys.get(key_id) if key_id else None
    if key is None:
        raise NotFound("Key not found")
    replayed = []
    for dead in await gateway.outbox.for_key(key.team_id, key.id, DEAD):
        again = await gateway.outbox.replay(key.team_id, dead["id"])
        if again is not None:
            replayed.append(again)
    return JSONResponse({"deliveries": replayed})


async def rotate_webhook_secret(request: Request) -> Response:
    """A new webhook secret for the key, shown only here; the old one signs too until
    ``previous_valid_until``."""
    gateway = admin(request)
    rotated = await gateway.keys.rotate_webhook_secret(
        request.path_params["key_id"], gateway.settings.webhook_secret_grace
    )
    if rotated is None:
        raise NotFound("Key not found")
    secret, until = rotated
    return JSONResponse({"webhook_secret": secret, "previous_valid_until": rfc3339(until)})


ROUTES = [
    Route("/admin/v1/deliveries", list_deliveries, methods=["GET"]),
    Route("/admin/v1/deliveries/replay", replay_dead, methods=["POST"]),
    Route("/admin/v1/deliveries/{delivery_id}/replay", replay_delivery, methods=["POST"]),
    Route("/admin/v1/keys/{key_id}/webhook-secret", rotate_webhook_secret, methods=["POST"]),
]
