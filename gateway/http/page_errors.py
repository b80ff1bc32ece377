"""The console's and portal's errors as pages: an unknown address under ``/console`` or
``/portal``, or an error a page handler raised (a missing record, an expired form, the store
down), answers an HTML page with the error's status, in the area's layout (its navigation when
signed in, a sign-in link otherwise), the error's public message and a link back. Every other
path keeps fal's JSON (``gateway.errors``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.console.pages import page
from gateway.console.sessions import CONSOLE, PORTAL
from gateway.errors import FalError, NotFound, RequestValidationFailed, StoreUnavailable
from gateway.http import console, portal
from gateway.http.pages import AREA_TITLES, current, layout
from gateway.http.services import services

NAVS = {CONSOLE: console.NAV, PORTAL: portal.NAV}
NO_SUCH_PAGE = "There is no page at this address"


def area_of(path: str) -> str | None:
    """The area whose page ``path`` is, if it is one."""
    for role in NAVS:
        if path == f"/{role}" or path.startswith(f"/{role}/"):
            return role
    return None


def section_of(path: str, nav: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The section of the navigation ``path`` is in (the overview for none)."""
    within = [item for item in nav if path == item[0] or path.startswith(f"{item[0]}/")]
    return max(within, key=lambda item: len(item[0]), default=nav[0])


def link_back(path: str, nav: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """Where the page's link goes: up to its section, or from a section to the overview."""
    href, label = section_of(path, nav)
    if href == path:
        href, label = nav[0]
    return href, f"Back to {label.lower()}"


def message(exc: FalError) -> str:
    """What the page says: the error's own public text (the API's answer would carry it too),
    never an exception's internals."""
    found = exc.messages if isinstance(exc, RequestValidationFailed) else ""
    text = found or exc.detail
    return text if text.endswith((".", "!", "?")) else f"{text}."


async def error_page(request: Request, exc: FalError) -> Response | None:
    """``exc`` as a page of its area, or None when ``request`` was not for a page."""
    role = area_of(request.url.path)
    if role is None:
        return None
    session = None
    # A portal session is checked against the store: not when the store just failed.
    if role == CONSOLE or not isinstance(exc, StoreUnavailable):
        with contextlib.suppress(FalError):
            session = await current(services(request), request, role)
    path, nav = request.url.path, NAVS[role]
    if session is not None:
        context = layout(role, nav, session, section_of(path, nav)[0])
        back = link_back(path, nav)
    else:
        context = {"area": role, "area_title": AREA_TITLES[role], "session": None}
        back = (f"/{role}/signin", "Sign in")
    try:
        title = HTTPStatus(exc.status_code).phrase.capitalize()  # "Not found"
    except ValueError:
        title = "Error"
    response = page(
        "error.html", exc.status_code, **context, title=title, message=message(exc), back=back
    )
    response.headers.update(exc.headers)  # Retry-After, Allow
    return response


async def no_such_page(request: Request) -> Response:
    raise NotFound(NO_SUCH_PAGE)


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ROUTES = [Route(f"/{role}/{{path:path}}", no_such_page, methods=METHODS) for role in NAVS]
"""Every other address under the areas, whatever the method: mount after their pages."""
