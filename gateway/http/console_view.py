"""What the console's pages share: the layout's context with the notice a change left, the
redirect back after a change, and reading a posted form (CSRF first) into an admin model or a
policy."""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from gateway.catalog.endpoints import decode_body
from gateway.console.forms import read_form
from gateway.console.pages import page
from gateway.console.sessions import Session
from gateway.errors import RequestValidationFailed
from gateway.http.console import area
from gateway.http.pages import require_csrf
from gateway.policy.model import Policy

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


async def posted_policy(
    request: Request, session: Session
) -> tuple[str, Policy | None, str | None]:
    """A policy posted as JSON (403 without the session's CSRF token), read with the admin
    API's ``Policy``: the text (to show again), the policy or the reasons it is not one."""
    form = await require_csrf(request, session)
    text = str(form.get("policy", "")).strip() or "{}"
    try:
        return text, Policy.model_validate(decode_body(text.encode())), None
    except RequestValidationFailed as exc:
        return text, None, exc.messages
    except ValidationError as exc:
        reasons = (f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return text, None, "; ".join(reasons)


def policy_context(policy: Policy, text: str | None) -> dict[str, Any]:
    """What a page's policy form needs: the policy as JSON without defaults (or the text
    posted, to show again), and the fields a policy has."""
    shown = text or json.dumps(policy.model_dump(mode="json", exclude_defaults=True), indent=2)
    return {"policy": shown, "policy_fields": tuple(Policy.model_fields)}
