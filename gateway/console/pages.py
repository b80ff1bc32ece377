"""Rendering the console's and portal's pages: Jinja2 templates (escaped by default) with the
headers every page carries: a strict Content-Security-Policy (only the gateway's own scripts,
styles and images), no framing, no caching of pages that may show a secret."""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from gateway.console.formats import duration, money, unit_price, when

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("gateway.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals.update(money=money, when=when, duration=duration, unit_price=unit_price)


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page rendered from ``template`` with ``context``."""
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def static_file(name: str) -> Response:
    """A file of ``console/static`` (stylesheet, script), or 404."""
    media = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
    kind = name.rsplit(".", 1)[-1]
    folder = resources.files(__package__).joinpath("static")
    if "/" in name or kind not in media or not folder.joinpath(name).is_file():
        return Response(status_code=404)
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(folder.joinpath(name).read_bytes(), media_type=media[kind], headers=headers)
