"""The console's fal accounts page, on a pool of its own (the pool is global per Redis): an
account disabled and enabled again, its weight changed, a bad weight answered on the page; the
calls to fal that failed, counted per account over every replica."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.jobs import KONTEXT, valid_body
from tests.upstream.pool_stack import accounts, pool_stack, set_knobs
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


def test_failed_calls_are_counted_per_account_across_replicas(watched: WatchedPage) -> None:
    fast = {"upstream_refresh_interval": 0.2}
    with pool_stack(gateways=2, gateway_settings=fast) as (emulator, gateways):
        set_knobs(emulator, fail_submit_rate=1.0, fail_submit_status=500)
        for gateway in gateways:
            token, _ = gateway.new_key()
            with gateway.client(token) as caller:
                for _ in range(3):
                    response = caller.post(f"/{KONTEXT}", json=valid_body(KONTEXT))
                    assert response.status_code == 502
        set_knobs(emulator, fail_submit_rate=0.0)

        page = watched.page
        sign_in(page, gateways[0])
        deadline = time.monotonic() + 10
        while True:  # each replica passes on its count at its next refresh of the pool
            go_to(page, "fal accounts")
            counts = {name: _failed_today(page, name) for name in ("one", "two")}
            if sum(counts.values()) == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sum(counts.values()) == 6, counts  # every failed submit of both replicas, once

        go_to(page, "Overview")
        for name, count in counts.items():
            row = page.get_by_role("row").filter(
                has=page.get_by_role("cell", name=name, exact=True)
            )
            expect(row.get_by_role("cell").last).to_have_text(str(count))


def _failed_today(page: Page, account: str) -> int:
    row = page.get_by_role("region", name=account).get_by_role("row", name=re.compile("Failed"))
    found = re.match(r"Failed calls\s+(\d+) today", row.inner_text())
    assert found is not None, row.inner_text()
    return int(found.group(1))
