"""The console's Prices page and a team's own prices in a real browser, on a gateway with a
Redis of its own (the prices it sets are the whole fleet's): a price set on the form is what the
next submit is estimated at; a scheduled one is listed and can be cancelled; bad input is
answered on the page and stores nothing; a team's own price is set and cleared from its page."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.jobs import IMAGE_TO_IMAGE, KONTEXT, valid_body
from tests.servers import Emulator, Gateway, RedisServer
from tests.web.conftest import WatchedPage
from tests.web.console import go_to, sign_in

PER_MEGAPIXEL = "Per megapixel (currency units)"


@pytest.fixture(scope="module")
def own_gateway(emulator: Emulator) -> Iterator[Gateway]:
    with RedisServer() as store, Gateway(store.url, emulator.url) as gateway:
        yield gateway


def _estimate(gateway: Gateway, token: str, endpoint: str) -> int:
    with gateway.client(token) as api:
        response = api.post(f"/{endpoint}", json=valid_body(endpoint))
    assert response.status_code == 200, response.text
    return int(response.headers["x-gateway-estimated-cost-micros"])


def _listing(gateway: Gateway) -> dict[str, Any]:
    with gateway.admin() as admin:
        listing: dict[str, Any] = admin.get("/admin/v1/prices").json()
    return listing


def _row(page: Page, endpoint: str, section: str) -> Any:
    card = page.locator("section.card").filter(has=page.get_by_role("heading", name=section))
    return card.get_by_role("row").filter(has_text=endpoint)


def test_prices_are_set_scheduled_and_cancelled_on_the_prices_page(
    watched: WatchedPage, own_gateway: Gateway
) -> None:
    token, _ = own_gateway.new_key()
    assert _estimate(own_gateway, token, KONTEXT) == 108  # the catalog's 0.035 per megapixel
    page = watched.page
    sign_in(page, own_gateway)
    go_to(page, "Prices")
    expect(_row(page, KONTEXT, "In effect")).to_contain_text("0.035")

    page.get_by_label("Endpoint").select_option(KONTEXT)
    page.get_by_label(PER_MEGAPIXEL).fill("0.05")
    page.get_by_label("Per request (currency units)").fill("0.001")
    page.get_by_role("button", name="Set price").click()
    expect(page.get_by_role("status")).to_have_text(f"Price of {KONTEXT} set, now (version 1)")
    expect(_row(page, KONTEXT, "In effect")).to_contain_text("0.05")
    assert _estimate(own_gateway, token, KONTEXT) == 1_000 + 154  # 3072 px at 0.05 per MP

    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    page.get_by_label("Endpoint").select_option(IMAGE_TO_IMAGE)
    page.get_by_label(PER_MEGAPIXEL).fill("0.04")
    page.get_by_label("Effective at").fill(at.isoformat())
    page.get_by_label("Note").fill("fal's new list price")
    page.get_by_role("button", name="Set price").click()
    expect(page.get_by_role("status")).to_contain_text("(version 2)")
    scheduled = _row(page, IMAGE_TO_IMAGE, "Scheduled")
    expect(scheduled).to_contain_text("fal's new list price")
    expect(scheduled).to_contain_text(at.strftime("%Y-%m-%d %H:%M:%S"))
    assert _estimate(own_gateway, token, IMAGE_TO_IMAGE) == 108  # not yet

    page.get_by_role("button", name="Cancel version 2").click()
    expect(page.get_by_role("status")).to_have_text("Price version 2 cancelled")
    expect(page.get_by_text("No price scheduled.")).to_be_visible()

    before = _listing(own_gateway)
    page.get_by_label(PER_MEGAPIXEL).fill("-1")
    page.get_by_role("button", name="Set price").click()
    expect(page.get_by_role("alert")).to_contain_text("Per megapixel")
    expect(page.get_by_label(PER_MEGAPIXEL)).to_have_value("-1")  # shown again to correct
    assert _listing(own_gateway) == before


def test_a_teams_own_price_is_set_and_cleared_on_its_page(
    watched: WatchedPage, own_gateway: Gateway
) -> None:
    team_id = f"web-{secrets.token_hex(3)}"
    token, _ = own_gateway.new_key(team_id=team_id)
    page = watched.page
    sign_in(page, own_gateway)
    page.goto(f"{own_gateway.url}/console/teams/{team_id}")
    page.get_by_label("Endpoint").select_option(IMAGE_TO_IMAGE)
    page.get_by_label(PER_MEGAPIXEL).fill("1")
    page.get_by_role("button", name="Set own price").click()
    expect(page.get_by_role("status")).to_have_text(f"Own price of {IMAGE_TO_IMAGE} set")
    row = _row(page, IMAGE_TO_IMAGE, "Prices")
    expect(row).to_contain_text("team")
    assert _estimate(own_gateway, token, IMAGE_TO_IMAGE) == 3_072  # 3072 px at 1 per MP

    page.get_by_role("button", name=f"Clear the own price of {IMAGE_TO_IMAGE}").click()
    expect(page.get_by_role("status")).to_have_text(f"Own price of {IMAGE_TO_IMAGE} cleared")
    expect(_row(page, IMAGE_TO_IMAGE, "Prices")).not_to_contain_text("team")
    assert _estimate(own_gateway, token, IMAGE_TO_IMAGE) == 108
