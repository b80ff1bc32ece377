"""The console's fal accounts page, on a pool of its own (the pool is global per Redis): an
account disabled and enabled again, its weight changed, a bad weight answered on the page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.upstream.pool_stack import accounts, pool_stack
from tests.web.conftest import WatchedPage
from tests.web.console import go_to, sign_in


def test_disable_enable_and_weigh_an_account(watched: WatchedPage) -> None:
    page = watched.page
    with pool_stack() as (_, (gateway,)):
        sign_in(page, gateway)
        go_to(page, "fal accounts")
        one = page.get_by_role("region", name="one")
        expect(one).to_contain_text("active")

        one.get_by_role("button", name="Disable one").click()
        expect(page.get_by_role("status")).to_have_text("one disabled")
        expect(page.get_by_role("region", name="one")).to_contain_text("disabled by the operator")
        assert accounts(gateway)["one"]["enabled"] is False
        assert accounts(gateway)["two"]["enabled"] is True

        page.get_by_role("button", name="Enable one").click()
        expect(page.get_by_role("status")).to_have_text("one enabled")
        assert accounts(gateway)["one"]["state"] == "active"

        page.get_by_label("Weight of two").fill("3")
        page.get_by_role("region", name="two").get_by_role("button", name="Save weight").click()
        expect(page.get_by_role("status")).to_have_text("two saved")
        assert accounts(gateway)["two"]["weight"] == 3

        page.get_by_label("Weight of two").fill("5000")
        page.get_by_role("region", name="two").get_by_role("button", name="Save weight").click()
        expect(page.get_by_role("alert")).to_contain_text("two: Weight: Input should be less")
        assert accounts(gateway)["two"]["weight"] == 3
