"""What the console's pages share: the layout's context with the notice a change left, the
redirect back after a change, and reading a posted form (CSRF first) into an admin model."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from gateway.console.forms import read_form
from gateway.console.pages import page
from gateway.console.sessions import Session
from gateway.http.console import area
from gateway.http.pages import require_csrf

Model = TypeVar("Model", bound=BaseModel)


def view(
    request: Request, session: Session, here: str, template: str, **context: Any
) -> HTMLResponse:
    """A console page: the layout, the notice a change redirected with, and ``context``
    (an ``error`` in it shows as an alert)."""
    notice = request.query_params.get("notice")
    return page(template, **area(session, here), **{"notice": notice, **context})


def back(path: str, notice: str) -> RedirectResponse:
    """After a change: to ``path``, saying ``notice``."""
    return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", status_code=303)


async def posted(
    request: Request, session: Session, model: type[Model], blank_is_none: bool = False
) -> tuple[dict[str, Any], Model | None, str | None]:
    """The posted form (403 without the session's CSRF token), read as ``model``: the raw
    form (to show again), the model or the reasons it is not one."""
    form = await require_csrf(request, session)
    found, error = read_form(model, form, blank_is_none)
    return form, found, error
