"""The admin API for prices: the table (``/admin/v1/prices``), where a price can be set now or
for later and a scheduled one cancelled, and a team's own price of an endpoint."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.catalog import CATALOG
from gateway.errors import NotFound
from gateway.http.admin import admin, body, path_name
from gateway.http.admin_teams import team_id_of
from gateway.http.services import Services
from gateway.prices.model import PriceSet, PriceTerms
from gateway.prices.table import team_listing
from gateway.web.jsoncodec import JSONResponse


def price_version(request: Request) -> int:
    """The path's price version (404 when it cannot be one)."""
    return int(path_name(request, "version", "[0-9]{1,15}", "Price not found"))


def _endpoint(request: Request) -> str:
    endpoint_id = str(request.path_params["endpoint"])
    if endpoint_id not in CATALOG:
        raise NotFound("Endpoint not served")
    return endpoint_id


async def list_prices(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse(await gateway.prices.listing())


async def set_price(request: Request) -> Response:
    gateway = admin(request)
    change = await body(request, PriceSet)
    return JSONResponse(await gateway.prices.set(change), status_code=201)


async def show_price(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse(await gateway.prices.entry(price_version(request)))


async def cancel_price(request: Request) -> Response:
    gateway = admin(request)
    version = price_version(request)
    entry = await gateway.prices.entry(version)
    await gateway.prices.cancel(version)
    return JSONResponse({**entry, "state": "cancelled"})


async def _team_prices(gateway: Services, team_id: str) -> dict[str, Any]:
    team = await gateway.teams.require(team_id)
    book = await gateway.prices.book()
    prices = team_listing(book, team.prices, gateway.prices.now())
    return {
        "team_id": team.id,
        "price_multiplier": team.public()["price_multiplier"],
        "prices": prices,
    }


async def show_team_prices(request: Request) -> Response:
    gateway = admin(request)
    return JSONResponse(await _team_prices(gateway, team_id_of(request)))


async def set_team_price(request: Request) -> Response:
    gateway = admin(request)
    team_id, endpoint_id = team_id_of(request), _endpoint(request)
    terms = await body(request, PriceTerms)
    await gateway.teams.require(team_id)
    await gateway.prices.set_team_price(team_id, endpoint_id, terms)
    return JSONResponse(await _team_prices(gateway, team_id))


async def clear_team_price(request: Request) -> Response:
    gateway = admin(request)
    team_id, endpoint_id = team_id_of(request), _endpoint(request)
    await gateway.teams.require(team_id)
    await gateway.prices.clear_team_price(team_id, endpoint_id)
    return JSONResponse(await _team_prices(gateway, team_id))


ROUTES = [
    Route("/admin/v1/prices", list_prices, methods=["GET"]),
    Route("/admin/v1/prices", set_price, methods=["POST"]),
    Route("/admin/v1/prices/{version}", show_price, methods=["GET"]),
    Route("/admin/v1/prices/{version}", cancel_price, methods=["DELETE"]),
    Route("/admin/v1/teams/{team_id}/prices", show_team_prices, methods=["GET"]),
    Route("/admin/v1/teams/{team_id}/prices/{endpoint:path}", set_team_price, methods=["PUT"]),
    Route("/admin/v1/teams/{team_id}/prices/{endpoint:path}", clear_team_price, methods=["DELETE"]),
]
