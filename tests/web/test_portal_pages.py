"""The portal in a real browser: a job run from the playground (image and mask uploaded through
the gateway) shows its image; the jobs page lists it with its cost; another key's job is a 404
as in the API; the deliveries page lists a webhook delivery; bad input is the form again with
alerts; changes need the CSRF token; a missing job is a 404 page. Screenshots of each page at
desktop and phone width."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.peer import Peer
from tests.servers import Gateway
from tests.web.conftest import WatchedPage
from tests.web.portal import images, shoot, sign_in


def _go(page: Page, section: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=section).click()


def _empty(
    watched: WatchedPage, gateway: Gateway, section: str, empty: str
) -> tuple[Page, str, dict[str, object]]:
    """A new key signed in, on ``section``, which says it has nothing yet."""
    token, key = gateway.new_key(f"{section} user")
    sign_in(watched.page, gateway, token)
    _go(watched.page, section)
    expect(watched.page.get_by_text(empty)).to_be_visible()
    return watched.page, token, key


def test_a_playground_job_shows_its_image_and_its_cost(
    watched: WatchedPage, gateway: Gateway, tmp_path: Path
) -> None:
    page, token, key = _empty(watched, gateway, "Jobs", "No jobs yet")

    _go(page, "Playground")
    page.get_by_label("Endpoint").select_option(INPAINTING)
    page.get_by_role("button", name="Choose").click()
    image, mask = images(tmp_path)
    page.get_by_label("Prompt (required)").fill("a hot air balloon")
    page.get_by_label("Image (required)").set_input_files(image)
    page.get_by_label("Mask (required)").set_input_files(mask)
    page.get_by_text("Parameters").click()
    expect(page.get_by_label("Num Inference Steps")).to_have_value("28")
    expect(page.get_by_label("Num Inference Steps")).to_have_attribute("max", "50")
    shoot(page, "playground")
    page.get_by_role("button", name="Run").click()

    expect(page).to_have_url(re.compile(r"/portal/jobs/[\w-]+$"))
    expect(page.get_by_role("status")).to_have_text("COMPLETED", timeout=20_000)
    result = page.get_by_role("img", name=re.compile("Result image 1"))
    expect(result).to_be_visible()
    assert result.evaluate("img => img.naturalWidth") > 0  # the file link served the image
    assert str(result.get_attribute("src")).startswith(f"{gateway.url}/files/")
    expect(page.get_by_role("heading", name="Python (fal-client)")).to_be_visible()
    expect(page.locator("pre").nth(1)).to_contain_text(f"{INPAINTING}")
    assert token.split("_")[-1] not in page.content()
    request_id = page.url.rsplit("/", 1)[-1]
    shoot(page, "job")

    with gateway.admin() as admin:
        uploaded = admin.get(f"/admin/v1/keys/{key['id']}").json()
    assert uploaded["uploaded_bytes"] > 0  # through the gateway's upload flow, on the quota

    _go(page, "Jobs")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=request_id[:8]))
    expect(row).to_contain_text(INPAINTING)
    expect(row).to_contain_text("charged")
    assert re.search(r"\d+\.\d\d", row.inner_text())
    shoot(page, "jobs")
    _go(page, "Overview")
    expect(page.get_by_role("img", name="Jobs per day", exact=True)).to_be_visible()
    jobs = page.locator(".stat", has=page.get_by_text("jobs, last 14 days", exact=True))
    expect(jobs.locator("b")).to_have_text("1")
    shoot(page, "home")

    with gateway.admin() as admin:
        admin.post(f"/admin/v1/keys/{key['id']}/revoke").raise_for_status()
    _go(page, "Jobs")
    expect(page.get_by_label("API key")).to_be_visible()


def test_bad_playground_input_is_the_form_again_with_alerts(
    watched: WatchedPage, gateway: Gateway, tmp_path: Path
) -> None:
    token, _ = gateway.new_key()
    page = watched.page
    sign_in(page, gateway, token)
    page.goto(f"{gateway.url}/portal/playground?endpoint={KONTEXT}")
    image, _ = images(tmp_path)
    page.get_by_label("Prompt (required)").fill("make it snow")
    page.get_by_label("Image (required)").set_input_files(image)
    page.get_by_text("Parameters").click()
    steps = page.get_by_label("Num Inference Steps")
    # The browser's own range check would stop the form: the server must check it too.
    steps.evaluate("input => { input.removeAttribute('max'); input.value = '500'; }")
    page.get_by_role("button", name="Run").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Num Inference Steps: Input should be less than or equal to 50")
    expect(page.get_by_label("Prompt (required)")).to_have_value("make it snow")
    shoot(page, "playground-error")


def test_another_keys_job_is_not_found(gateway: Gateway) -> None:
    owner, _ = gateway.new_key("owner")
    other, _ = gateway.new_key("other")
    with gateway.client(owner) as api:
        job = submit(api, KONTEXT, valid_body(KONTEXT))
    with httpx.Client(base_url=gateway.url) as browser:
        browser.post("/portal/signin", data={"secret": other})
        theirs = browser.get(f"/portal/jobs/{job['request_id']}")
        unknown = browser.get("/portal/jobs/no-such-request")
        assert (theirs.status_code, unknown.status_code) == (404, 404)
        assert "Request not found" in theirs.text
        assert theirs.text == unknown.text
        assert job["request_id"] not in browser.get("/portal/jobs").text
    with gateway.client(other) as api:  # the API's own rule answers the same
        assert api.get(job["status_url"]).status_code == 404


def test_the_deliveries_page_lists_a_webhook_delivery(
    watched: WatchedPage, gateway: Gateway, peer: Peer
) -> None:
    page, token, _ = _empty(watched, gateway, "Webhooks", "No webhook deliveries")
    hook = f"{peer.url}/hooks/portal-{token[-6:]}"
    with gateway.client(token) as api:
        job = submit(api, KONTEXT, valid_body(KONTEXT), fal_webhook=hook)
        wait_status(api, job["status_url"])
    peer.wait_for_posts(f"/hooks/portal-{token[-6:]}", 1)
    page.reload()
    row = page.get_by_role("row").filter(has_text=hook)
    expect(row).to_contain_text(job["request_id"][:8])
    expect(row).to_contain_text(re.compile("delivered|pending"))
    shoot(page, "deliveries")


def test_a_portal_change_without_the_csrf_token_is_refused(gateway: Gateway) -> None:
    token, _ = gateway.new_key()
    with httpx.Client(base_url=gateway.url) as browser:
        browser.post("/portal/signin", data={"secret": token})
        form = {"endpoint": KONTEXT, "prompt": "x"}
        assert browser.post("/portal/playground", data=form).status_code == 403
        forged = browser.post("/portal/playground", data={**form, "csrf": "guessed"})
        assert forged.status_code == 403
        assert browser.get("/portal/jobs").status_code == 200


def test_the_not_found_page_at_both_widths(watched: WatchedPage, gateway: Gateway) -> None:
    token, _ = gateway.new_key("lost")
    sign_in(watched.page, gateway, token)
    watched.page.goto(f"{gateway.url}/portal/jobs/no-such-request")
    expect(watched.page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(watched.page.get_by_role("alert")).to_have_text("Request not found.")
    expect(watched.page.get_by_role("link", name="Back to jobs")).to_be_visible()
    shoot(watched.page, "not-found")
    watched.not_found_pages(1)


@pytest.mark.parametrize("name", ["signin"])
def test_the_sign_in_page_at_both_widths(watched: WatchedPage, gateway: Gateway, name: str) -> None:
    watched.page.goto(f"{gateway.url}/portal/signin")
    shoot(watched.page, name)
