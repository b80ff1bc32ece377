"""The admin API for the pool of fal accounts (``/admin/v1/upstreams``): every replica sees a
change at once (choosing an account reads Redis) or within ``upstream_refresh_interval``. The
fal key is write-only: answers show its fingerprint."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.admin import admin, body, path_name
from gateway.upstream.accounts import NAME_PATTERN, AccountChange, AccountCreate
from gateway.web.jsoncodec import JSONResponse


def _name(request: Request) -> str:
    return path_name(request, "name", NAME_PATTERN, "Upstream account not found")


async def create_account(request: Request) -> Response:
    gateway = admin(request)
    spec = await body(request, AccountCreate)
    created = await gateway.accounts.accounts.create(spec)
    await gateway.accounts.refresh()
    return JSONResponse(created.public(time.time()), status_code=201)


async def list_accounts(request: Request) -> Response:
    gateway = admin(request)
    now = time.time()
    views = await gateway.accounts.accounts.views()
    return JSONResponse({"upstreams": [view.public(now) for view in views]})


async def show_account(request: Request) -> Response:
    gateway = admin(request)
    found = await gateway.accounts.accounts.view(_name(request))
    return JSONResponse(found.public(time.time()))


async def update_account(request: Request) -> Response:
    gateway = admin(request)
    name = _name(request)
    change = await body(request, AccountChange)
    updated = await gateway.accounts.accounts.update(name, change)
    await gateway.accounts.refresh()
    return JSONResponse(updated.public(time.time()))


async def delete_account(request: Request) -> Response:
    gateway = admin(request)
    name = _name(request)
    await gateway.accounts.delete(name)
    return JSONResponse({"name": name, "deleted": True})


ROUTES = [
    Route("/admin/v1/upstreams", create_account, methods=["POST"]),
    Route("/admin/v1/upstreams", list_accounts, methods=["GET"]),
    Route("/admin/v1/upstreams/{name}", show_account, methods=["GET"]),
    Route("/admin/v1/upstreams/{name}", update_account, methods=["PATCH"]),
    Route("/admin/v1/upstreams/{name}", delete_account, methods=["DELETE"]),
]
