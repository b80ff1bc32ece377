"""Errors of the console's and portal's pages are pages: an unknown address, a missing record, an
expired form, the store down answer HTML with the error's status, in the area's layout (its
navigation when signed in, a sign-in link otherwise) with a link back, never fal's JSON and
never a secret. Every API path keeps fal's JSON error shape exactly."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import httpx
from playwright.sync_api import expect

from gateway.console.pages import CSP
from tests.jobs import KONTEXT, submit, valid_body
from tests.servers import Emulator, Gateway, RedisServer
from tests.web.conftest import WatchedPage
from tests.web.console import an_address, sign_in, signed_in_client


def _is_page(answer: httpx.Response, status: int, says: str) -> str:
    """The page's main text, once ``answer`` is an HTML page of ``status`` saying ``says``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP
    assert "x-fal-error-type" not in answer.headers
    main = answer.text.split('<main id="main">')[1]
    assert f'<p role="alert">{says}</p>' in main, main
    return main


@contextlib.contextmanager
def _portal(gateway: Gateway, token: str) -> Iterator[httpx.Client]:
    """An HTTP client with a portal session of ``token``."""
    with httpx.Client(base_url=gateway.url, timeout=30, headers=an_address()) as client:
        client.post("/portal/signin", data={"secret": token})
        yield client


def test_unknown_addresses_and_missing_records_are_404_pages(gateway: Gateway) -> None:
    token, key = gateway.new_key("error pages", team_id="web-errors")
    with httpx.Client(base_url=gateway.url, timeout=30) as stranger:
        for path in ("/console/nowhere", "/console/", "/portal/jobs/x/y", "/console/teams/x/y"):
            main = _is_page(stranger.get(path), 404, "There is no page at this address.")
            assert f'<a href="/{path.split("/")[1]}/signin">Sign in</a>' in main
        # POST too: not a submit to an app named ``console/...``, and no 401 for a missing key.
        _is_page(
            stranger.post("/console/nowhere", json={}), 404, "There is no page at this address."
        )
    with signed_in_client(gateway) as (console, _):
        missing = {
            "/console/somewhere/else": (
                "There is no page at this address.",
                "/console",
                "overview",
            ),
            "/console/keys/no-such-key": ("Key not found.", "/console/keys", "keys"),
            "/console/teams/no-such-team": ("Team not found.", "/console/teams", "teams"),
            "/console/teams/not%20a%20team": ("Team not found.", "/console/teams", "teams"),
            "/console/jobs/web-errors/no-such-request": ("Job not found.", "/console/jobs", "jobs"),
        }
        for path, (says, section, name) in missing.items():
            main = _is_page(console.get(path), 404, says)
            assert f'<a href="{section}">Back to {name}</a>' in main
            nav = console.get(path).text.split('aria-label="Sections"')[1]
            assert f'<a href="{section}" aria-current="page">' in nav  # signed in: the nav
    owner, _ = gateway.new_key("owner", team_id="web-errors")
    with gateway.client(owner) as api:
        theirs = submit(api, KONTEXT, valid_body(KONTEXT))["request_id"]
    with _portal(gateway, token) as portal:
        another = portal.get(f"/portal/jobs/{theirs}")
        unknown = portal.get("/portal/jobs/no-such-request")
        main = _is_page(another, 404, "Request not found.")
        assert '<a href="/portal/jobs">Back to jobs</a>' in main
        assert another.text == unknown.text  # another key's job is a missing one
        assert theirs not in another.text
        _is_page(portal.get("/portal/elsewhere"), 404, "There is no page at this address.")
    assert str(key["id"]) not in another.text


def test_other_errors_of_page_handlers_are_pages(gateway: Gateway) -> None:
    _, key = gateway.new_key("target", team_id="web-errors")
    with signed_in_client(gateway) as (console, csrf):
        forged = console.post(f"/console/keys/{key['id']}/revoke", data={"csrf": "guessed"})
        main = _is_page(forged, 403, "The form has expired; reload the page and try again.")
        assert '<a href="/console/keys">Back to keys</a>' in main
        replay = console.post("/console/deliveries/no-such-delivery/replay", data={"csrf": csrf})
        _is_page(replay, 404, "Delivery not found.")
        gone = console.post("/console/keys/no-such-key/revoke", data={"csrf": csrf})
        _is_page(gone, 404, "Key not found.")
    with gateway.admin() as admin:
        assert admin.get(f"/admin/v1/keys/{key['id']}").json()["status"] == "active"


def _json_error(answer: httpx.Response, status: int, body: object) -> None:
    assert (answer.status_code, answer.json()) == (status, body)
    assert answer.headers["content-type"] == "application/json"


def test_api_paths_keep_fals_json_errors(gateway: Gateway) -> None:
    token, _ = gateway.new_key("api errors")
    not_found = {"detail": "Not Found", "error_type": "not_found"}
    with httpx.Client(base_url=gateway.url, timeout=30) as anyone:
        _json_error(anyone.get("/fal-ai/no-such-app"), 404, not_found)
        _json_error(anyone.get("/consoles"), 404, not_found)  # not the console's area
        _json_error(anyone.get("/portal-x/jobs"), 404, not_found)
        unauthorized = {"detail": "Invalid or missing API key", "error_type": "unauthorized"}
        _json_error(anyone.get("/v1/me"), 401, unauthorized)
    with gateway.admin() as admin:
        _json_error(
            admin.get("/admin/v1/keys/no-such-key"),
            404,
            {"detail": "Key not found", "error_type": "not_found"},
        )
        invalid = admin.post("/admin/v1/teams", json={"name": ""})
        assert invalid.status_code == 422
        assert [item["loc"] for item in invalid.json()["detail"]] == [["body", "name"]]
    with gateway.client(token) as api:
        missing = api.get(f"/{KONTEXT}/requests/no-such-request/status")
        _json_error(missing, 404, {"detail": "Request not found", "error_type": "not_found"})
        assert missing.headers["x-fal-error-type"] == "not_found"


def test_the_store_down_is_a_503_page(emulator: Emulator) -> None:
    with RedisServer() as store, Gateway(store.url, emulator.url) as gateway:
        token, _ = gateway.new_key("store down")
        with signed_in_client(gateway) as (console, _), _portal(gateway, token) as portal:
            assert portal.get("/portal").status_code == 200
            store.stop()
            down = "The gateway&#39;s data store is unavailable; try again shortly."
            answer = console.get("/console/teams")
            main = _is_page(answer, 503, down)
            assert answer.headers["retry-after"] == "1"
            assert '<a href="/console">Back to overview</a>' in main
            assert '<a href="/console/teams" aria-current="page">' in answer.text
            # The portal's session cannot be checked without the store: no nav, sign in.
            main = _is_page(portal.get("/portal/jobs"), 503, down)
            assert '<a href="/portal/signin">Sign in</a>' in main
            with gateway.admin() as admin:
                _json_error(
                    admin.get("/admin/v1/teams"),
                    503,
                    {
                        "detail": down.replace("&#39;", "'")[:-1],
                        "error_type": "gateway_unavailable",
                    },
                )


def test_the_404_page_in_a_browser(watched: WatchedPage, gateway: Gateway) -> None:
    page = watched.page
    page.goto(f"{gateway.url}/portal/nowhere")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("There is no page at this address.")
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_label("API key")).to_be_visible()

    sign_in(page, gateway)
    page.goto(f"{gateway.url}/console/keys/no-such-key")
    expect(page).to_have_title(re.compile("^Not found "))
    expect(page.get_by_role("alert")).to_have_text("Key not found.")
    page.get_by_role("link", name="Back to keys").click()
    expect(page.get_by_role("heading", name="Keys")).to_be_visible()
    watched.not_found_pages(2)
