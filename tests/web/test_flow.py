"""The issue's whole flow in one browser, as a reseller and then their customer would go:
the operator signs in, creates a team, credits it, creates a key and reads its secret once;
the customer signs in to the portal with it, runs a job in the playground and sees the image;
the job and its cost show in the portal and the console; the operator revokes the key and the
customer is signed out on their next page. No browser console error on any page (``watched``)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.images import mask_left_half, png
from tests.jobs import INPAINTING
from tests.servers import Gateway
from tests.web.conftest import WatchedPage
from tests.web.console import go_to, sign_in


def _operator_creates_a_funded_key(page: Page, gateway: Gateway, team_id: str) -> str:
    sign_in(page, gateway)
    go_to(page, "Teams")
    page.get_by_label("Id", exact=True).fill(team_id)
    page.get_by_label("Name", exact=True).fill("Flow studio")
    page.get_by_role("button", name="Create team").click()
    page.get_by_label("Amount (currency units)").fill("10")
    page.get_by_label("Note", exact=True).fill("first invoice")
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_have_text("Credited; balance 10.00")
    go_to(page, "Keys")
    page.get_by_label("Team", exact=True).last.select_option(team_id)
    page.get_by_label("Name", exact=True).fill("flow key")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#secret").inner_text().strip()
    page.get_by_role("link", name="Done: go to the key").click()
    assert secret not in page.content()  # shown once only
    return secret


def _customer_runs_a_job(page: Page, gateway: Gateway, secret: str, tmp_path: Path) -> str:
    page.goto(f"{gateway.url}/portal")
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation").get_by_role("link", name="Playground").click()
    page.get_by_label("Endpoint").select_option(INPAINTING)
    page.get_by_role("button", name="Choose").click()
    image, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    image.write_bytes(png(64, 48))
    mask.write_bytes(mask_left_half(64, 48))
    page.get_by_label("Prompt (required)").fill("a lighthouse at dusk")
    page.get_by_label("Image (required)").set_input_files(image)
    page.get_by_label("Mask (required)").set_input_files(mask)
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("status")).to_have_text("COMPLETED", timeout=20_000)
    result = page.get_by_role("img", name=re.compile("Result image 1"))
    assert result.evaluate("img => img.complete && img.naturalWidth") > 0
    request_id = page.url.rsplit("/", 1)[-1]
    page.get_by_role("navigation").get_by_role("link", name="Jobs").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=request_id[:8]))
    expect(row).to_contain_text("charged")
    assert re.search(r"\d+\.\d{2}", row.inner_text())  # its cost
    return request_id


def test_operator_and_customer_flow(
    browser_pages: tuple[WatchedPage, WatchedPage], gateway: Gateway, tmp_path: Path
) -> None:
    operator, customer = (watched.page for watched in browser_pages)
    team_id = f"flow-{secrets.token_hex(3)}"
    secret = _operator_creates_a_funded_key(operator, gateway, team_id)
    request_id = _customer_runs_a_job(customer, gateway, secret, tmp_path)

    go_to(operator, "Jobs")
    operator.get_by_label("Team", exact=True).select_option(team_id)
    operator.get_by_role("button", name="Show").click()
    job = operator.get_by_role("row").filter(has_text=INPAINTING)
    expect(job).to_contain_text("charged")
    expect(job).to_contain_text(request_id[:8])
    go_to(operator, "Keys")
    operator.get_by_role("link", name="flow key").click()
    operator.get_by_role("button", name="Revoke key").click()
    expect(operator.get_by_role("status")).to_have_text("Key flow key revoked")

    customer.get_by_role("navigation").get_by_role("link", name="Overview").click()
    expect(customer.get_by_label("API key")).to_be_visible()
