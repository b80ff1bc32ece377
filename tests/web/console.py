"""Helpers of the console's browser tests: signing in, and a client of the console's forms."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator

import httpx
from playwright.sync_api import Page

from tests.servers import Gateway


def an_address() -> dict[str, str]:
    """A client address of its own (the gateway trusts loopback's ``X-Forwarded-For``), so
    that the tests' sign-ins do not add up to the limit of attempts per address."""
    return {"X-Forwarded-For": f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.7"}


def sign_in(page: Page, gateway: Gateway) -> None:
    """Sign in to the console with the admin token, as an operator would."""
    page.set_extra_http_headers(an_address())
    page.goto(f"{gateway.url}/console")
    page.get_by_label("Admin token").fill(Gateway.ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


@contextlib.contextmanager
def signed_in_client(gateway: Gateway) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client with a console session, and the session's CSRF token (read off a page)."""
    with httpx.Client(base_url=gateway.url, timeout=30, headers=an_address()) as client:
        client.post("/console/signin", data={"secret": Gateway.ADMIN_TOKEN})
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console").text)
        assert found is not None
        yield client, found.group(1)


def go_to(page: Page, section: str) -> None:
    """Open a section of the console from its navigation bar."""
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()
