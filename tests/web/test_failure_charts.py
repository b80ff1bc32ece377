"""Failed jobs over time: a job fal fails is counted apart from the ones it completes, on the
portal's home (one key's) and the console's overview (every team's). (That a cancelled job is
not counted as failed is tested with the other settlements, in tests/limits.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from tests.jobs import KONTEXT, run, valid_body
from tests.servers import Gateway
from tests.web import portal
from tests.web.conftest import WatchedPage
from tests.web.console import sign_in

UNREACHABLE = "http://127.0.0.1:9/gone.png"
"""An input fal cannot fetch: the job fails (fal answers 422 for its result)."""


def _settled(gateway: Gateway, key_id: str, jobs: int) -> None:
    deadline = time.monotonic() + 20
    with gateway.admin() as admin:
        while time.monotonic() < deadline:
            rows = admin.get("/admin/v1/usage", params={"key_id": key_id}).json()["usage"]
            if sum(row["requests"] for row in rows) == jobs:
                return
            time.sleep(0.05)
    raise AssertionError("the jobs did not settle")


def _todays_bar(page: Page, chart: str) -> float:
    """The value of today's bar in the chart named ``chart`` (its bars' titles say it)."""
    today = datetime.now(UTC).date().isoformat()
    bars = page.get_by_role("img", name=chart, exact=True).locator("rect > title")
    title = bars.last.text_content() or ""
    assert title.startswith(f"{today}: "), title
    return float(title.split(": ")[1])


def test_failed_jobs_are_charted_apart(watched: WatchedPage, gateway: Gateway) -> None:
    token, key = gateway.new_key("failing sometimes")
    with gateway.client(token) as caller:
        assert run(caller, KONTEXT, valid_body(KONTEXT)).status_code == 200
        assert run(caller, KONTEXT, valid_body(KONTEXT, image_url=UNREACHABLE)).status_code == 422
        assert run(caller, KONTEXT, valid_body(KONTEXT, image_url=UNREACHABLE)).status_code == 422
    _settled(gateway, str(key["id"]), 3)

    page = watched.page
    portal.sign_in(page, gateway, token)
    expect(page.locator(".stat.bad b")).to_have_text("2")
    assert _todays_bar(page, "Jobs per day") == 3
    assert _todays_bar(page, "Failed jobs per day") == 2

    page.context.clear_cookies()
    sign_in(page, gateway)
    assert _todays_bar(page, "Failed jobs per day") >= 2  # every team's, on a shared Redis
    expect(page.locator(".stat.bad")).to_be_visible()
