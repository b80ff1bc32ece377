"""What the console's and portal's handlers share: signing in and out, the session check on
every page (against the store, so a rotated admin token or a revoked key ends it at once), and
CSRF on every change."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.accounts.keys import parse_authorization
from gateway.console.charts import RED, bar_chart, daily_series
from gateway.console.pages import page, static_file
from gateway.console.sessions import CONSOLE, Cookies, Session, csrf_ok, token_digest
from gateway.console.signin import blocked, failed
from gateway.errors import FalError, Forbidden
from gateway.http.services import Services, services
from gateway.limits.usage import days, usage_rows
from gateway.telemetry import log_context

USAGE_DAYS = 14

AREA_TITLES = {CONSOLE: "console", "portal": "portal"}
SECRET_LABELS = {CONSOLE: "Admin token", "portal": "API key"}
HINTS = {
    CONSOLE: "The gateway's GATEWAY_ADMIN_TOKEN. It stays on the server: the browser keeps only "
    "a sealed session cookie.",
    "portal": "One of your gateway keys (fgw_...). It stays on the server: the browser keeps only "
    "a sealed session cookie.",
}


def cookies(gateway: Services) -> Cookies:
    return Cookies.of(gateway.settings.link_signing_key(), gateway.settings.public_url)


async def current(gateway: Services, request: Request, role: str) -> Session | None:
    """The request's session of ``role``, if it is still good."""
    session = cookies(gateway).read(request, role)
    if session is None:
        return None
    if role == CONSOLE:
        token = gateway.settings.admin_token
        good = token is not None and hmac.compare_digest(
            session.subject, token_digest(token.get_secret_value())
        )
        return session if good else None
    key = await gateway.keys.by_secret_hash(session.team_id, session.key_id, session.proof)
    return session if key is not None else None


def signin_page(role: str, error: str | None = None, status_code: int = 200) -> Response:
    return page(
        "signin.html",
        status_code,
        title="Sign in",
        area=role,
        area_title=AREA_TITLES[role],
        secret_label=SECRET_LABELS[role],
        hint=HINTS[role],
        error=error,
        session=None,
    )


def sign_in_form(role: str) -> Callable[[Request], Awaitable[Response]]:
    async def show(request: Request) -> Response:
        return signin_page(role)

    return show


def sign_in(role: str) -> Callable[[Request], Awaitable[Response]]:
    """The sign-in form's handler: the admin token (console) or a gateway key (portal)."""

    async def handle(request: Request) -> Response:
        gateway = services(request)
        client = request.client.host if request.client else "unknown"
        if await blocked(gateway.store, role, client):
            return signin_page(role, "Too many failed attempts; wait ten minutes", 429)
        secret = str((await request.form()).get("secret", "")).strip()
        subject, proof = await _check_secret(gateway, role, secret)
        if subject is None:
            await failed(gateway.store, role, client)
            # 200: the form again, with the reason; a browser reports any other status of a
            # page as an error of its own.
            return signin_page(role, f"That {SECRET_LABELS[role].lower()} is not valid")
        response = RedirectResponse(f"/{role}", status_code=303)
        cookies(gateway).start(response, role, subject, proof)
        return response

    return handle


async def _check_secret(gateway: Services, role: str, secret: str) -> tuple[str | None, str]:
    if role == CONSOLE:
        token = gateway.settings.admin_token
        if token is None or not hmac.compare_digest(
            secret.encode(), token.get_secret_value().encode()
        ):
            return None, ""
        return token_digest(secret), ""
    try:
        parsed = parse_authorization(f"Bearer {secret}")
        key = await gateway.keys.authenticate(f"Bearer {secret}")
    except FalError:
        return None, ""
    return f"{key.team_id}/{key.id}", parsed.secret_hash


def sign_out(role: str) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        gateway = services(request)
        session = await current(gateway, request, role)
        if session is not None:
            await require_csrf(request, session)
        response = RedirectResponse(f"/{role}/signin", status_code=303)
        cookies(gateway).end(response, role)
        return response

    return handle


async def require_csrf(request: Request, session: Session) -> dict[str, Any]:
    """The posted form, once it carried the session's CSRF token (403 otherwise)."""
    form = dict(await request.form())
    token = form.get("csrf")
    if not csrf_ok(session, token if isinstance(token, str) else None):
        raise Forbidden("The form has expired; reload the page and try again")
    return form


def static(role: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return static_file(str(request.path_params["name"]))

    return serve


def session_routes(role: str) -> list[Route]:
    """Signing in and out of ``role``'s pages, and their static files."""
    return [
        Route(f"/{role}/signin", sign_in_form(role), methods=["GET"]),
        Route(f"/{role}/signin", sign_in(role), methods=["POST"]),
        Route(f"/{role}/signout", sign_out(role), methods=["POST"]),
        Route(f"/{role}/static/{{name}}", static(role), methods=["GET"]),
    ]


def layout(
    role: str, nav: Sequence[tuple[str, str]], session: Session, here: str
) -> dict[str, Any]:
    """What every signed-in page's layout needs."""
    return {
        "area": role,
        "area_title": AREA_TITLES[role],
        "session": session,
        "nav": nav,
        "here": here,
    }


async def recent_usage(
    gateway: Services, team_ids: Sequence[str], key_id: str | None = None
) -> dict[str, Any]:
    """Jobs, failed jobs and spend of the last ``USAGE_DAYS`` days (of one key, or of the
    teams), as the overview pages show them: totals and a bar chart of each."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=USAGE_DAYS - 1)
    rows = await usage_rows(gateway.redis, team_ids, start, today, key_id=key_id, group_by=["day"])
    span = [day.isoformat() for day in days(start, today)]
    return {
        "days": USAGE_DAYS,
        "jobs_total": sum(int(row["requests"]) for row in rows),
        "failed_total": sum(int(row["failed"]) for row in rows),
        "spend_total": sum(int(row["cost_micros"]) for row in rows),
        "jobs_chart": bar_chart(daily_series(rows, span, "requests"), "Jobs per day"),
        "failed_chart": bar_chart(
            daily_series(rows, span, "failed"), "Failed jobs per day", color=RED
        ),
        "spend_chart": bar_chart(
            daily_series(rows, span, "cost_micros", 1_000_000), "Spend per day"
        ),
    }


Handler = Callable[[Request, Services, Session], Awaitable[Response]]


def signed_in(role: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` for a signed-in session of ``role``; others go to the sign-in page."""

    async def guarded(request: Request) -> Response:
        gateway = services(request)
        session = await current(gateway, request, role)
        if session is None:
            response = RedirectResponse(f"/{role}/signin", status_code=303)
            cookies(gateway).end(response, role)
            return response
        if role != CONSOLE:  # a key's session
            log_context.bind(key_id=session.key_id, team=session.team_id)
        return await handler(request, gateway, session)

    return guarded
