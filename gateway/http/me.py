"""``GET /v1/me``: the calling key's own limits, its team's credit, and its usage."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.access import check_browser_origin
from gateway.http.services import services
from gateway.limits.usage import empty_row, usage_rows
from gateway.web.jsoncodec import JSONResponse


async def me(request: Request) -> Response:
    gateway = services(request)
    key = await gateway.keys.authenticate(request.headers.get("authorization"))
    await check_browser_origin(gateway, request)
    team = await gateway.teams.require(key.team_id)
    today = datetime.now(UTC).date()

    async def total(start: datetime) -> dict[str, object]:
        rows = await usage_rows(
            gateway.redis, [key.team_id], start.date(), today, key_id=key.id, group_by=()
        )
        return rows[0] if rows else empty_row()

    start_of_month = datetime(today.year, today.month, 1, tzinfo=UTC)
    return JSONResponse(
        {
            "key": key.public(),
            "team": {
                "id": team.id,
                "name": team.name,
                "balance_micros": team.balance_micros,
                "reserved_micros": team.reserved_micros,
                "available_micros": team.balance_micros - team.reserved_micros,
                "price_multiplier": team.public()["price_multiplier"],
                "limits": team.limits,
            },
            "usage": {
                "today": await total(datetime(today.year, today.month, today.day, tzinfo=UTC)),
                "this_month": await total(start_of_month),
            },
        }
    )


ROUTES = [Route("/v1/me", me, methods=["GET"])]
