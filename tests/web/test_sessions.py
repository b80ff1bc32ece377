"""Signing in to the console (admin token) and the portal (a gateway key) in a real browser:
sealed, HttpOnly, SameSite=Strict cookies that never hold the secret; a wrong secret refused;
sign-out; a revoked key signed out of the portal on its next page; strict headers."""

from __future__ import annotations

import httpx

from tests.servers import Gateway
from tests.web.conftest import WatchedPage


def _sign_in(watched: WatchedPage, gateway: Gateway, area: str, label: str, secret: str) -> None:
    page = watched.page
    page.goto(f"{gateway.url}/{area}")
    page.get_by_label(label).fill(secret)
    page.get_by_role("button", name="Sign in").click()


def test_console_sign_in_and_out(watched: WatchedPage, gateway: Gateway) -> None:
    page = watched.page
    _sign_in(watched, gateway, "console", "Admin token", "not the token")
    assert page.get_by_role("alert").inner_text() == "That admin token is not valid"
    _sign_in(watched, gateway, "console", "Admin token", Gateway.ADMIN_TOKEN)
    assert page.get_by_role("heading", name="Overview").is_visible()
    (cookie,) = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert Gateway.ADMIN_TOKEN not in cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    assert page.get_by_label("Admin token").is_visible()
    page.goto(f"{gateway.url}/console")
    assert page.url.endswith("/console/signin")


def test_portal_session_ends_when_its_key_is_revoked(
    watched: WatchedPage, gateway: Gateway
) -> None:
    token, created = gateway.new_key("portal user")
    page = watched.page
    _sign_in(watched, gateway, "portal", "API key", token)
    assert page.get_by_role("heading", name="portal user").is_visible()
    (cookie,) = page.context.cookies()
    assert token.split("_")[-1] not in cookie["value"]
    with gateway.admin() as admin:
        admin.post(f"/admin/v1/keys/{created['id']}/revoke").raise_for_status()
    page.goto(f"{gateway.url}/portal")
    assert page.url.endswith("/portal/signin")
    assert page.get_by_label("API key").is_visible()


def test_pages_carry_a_strict_policy_and_changes_need_the_csrf_token(gateway: Gateway) -> None:
    signin = httpx.get(f"{gateway.url}/console/signin")
    policy = signin.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert signin.headers["x-frame-options"] == "DENY"
    with httpx.Client(base_url=gateway.url) as client:
        client.post("/console/signin", data={"secret": Gateway.ADMIN_TOKEN})
        assert client.get("/console").status_code == 200
        forged = client.post("/console/signout", data={"csrf": "guessed"})
        assert forged.status_code == 403
        assert client.get("/console").status_code == 200  # still signed in


def test_failed_sign_ins_are_limited_per_address(gateway: Gateway) -> None:
    guesser = {"X-Forwarded-For": "10.99.0.1"}
    with httpx.Client(base_url=gateway.url, headers=guesser) as client:
        for _ in range(10):
            wrong = client.post("/console/signin", data={"secret": "guess"})
            assert wrong.status_code == 200
            assert "not valid" in wrong.text
        blocked = client.post("/console/signin", data={"secret": Gateway.ADMIN_TOKEN})
        assert blocked.status_code == 429
        assert "Too many failed attempts" in blocked.text
        assert client.get("/console").status_code in (303, 307) or client.cookies == {}
    other = {"X-Forwarded-For": "10.99.0.2"}
    with httpx.Client(base_url=gateway.url, headers=other) as client:
        client.post("/console/signin", data={"secret": Gateway.ADMIN_TOKEN})
        assert client.get("/console").status_code == 200
