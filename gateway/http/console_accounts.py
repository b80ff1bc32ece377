"""The console's fal accounts: their state, reason, jobs in flight and failed calls; enabling,
disabling and weighting one (``AccountChange``, as the admin API's PATCH, then the pool
refreshed). The fal key itself is never shown, only its fingerprint."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.console.sessions import CONSOLE, Session
from gateway.errors import FalError
from gateway.http.admin import path_name
from gateway.http.console_view import back, posted, view
from gateway.http.pages import signed_in
from gateway.http.services import Services
from gateway.upstream.accounts import NAME_PATTERN, AccountChange

FAILURE_DAYS = 7
"""Days of failed calls the page shows."""


async def list_accounts(
    request: Request, gateway: Services, session: Session, **context: Any
) -> Response:
    now = time.time()
    accounts = [account.public(now) for account in await gateway.accounts.accounts.views()]
    return view(
        request,
        session,
        "/console/accounts",
        "console/accounts.html",
        title="fal accounts",
        accounts=accounts,
        failures=await gateway.accounts.failures.recent(FAILURE_DAYS),
        failure_days=FAILURE_DAYS,
        **context,
    )


async def change_account(request: Request, gateway: Services, session: Session) -> Response:
    name = path_name(request, "name", NAME_PATTERN, "Upstream account not found")
    _, change, error = await posted(request, session, AccountChange)
    if change is None:
        return await list_accounts(request, gateway, session, error=f"{name}: {error}")
    try:
        await gateway.accounts.accounts.update(name, change)
    except FalError as exc:
        return await list_accounts(request, gateway, session, error=f"{name}: {exc}")
    await gateway.accounts.refresh()
    said = "saved" if change.enabled is None else "enabled" if change.enabled else "disabled"
    return back("/console/accounts", f"{name} {said}")


ROUTES = [
    Route("/console/accounts", signed_in(CONSOLE, list_accounts), methods=["GET"]),
    Route("/console/accounts/{name}", signed_in(CONSOLE, change_account), methods=["POST"]),
]
