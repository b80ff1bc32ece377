"""A job's status history and duration on its console and portal pages and in both job lists:
submitted, first seen running (when someone polled while it ran), ended with its outcome, and
the time each took; the usage export times each job too."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator, Gateway
from tests.web import portal
from tests.web.conftest import WatchedPage
from tests.web.console import sign_in

SECONDS = re.compile(r"^\d+\.\d\d s$")


def _settled_entry(gateway: Gateway, team_id: str, request_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    with gateway.admin() as admin:
        while time.monotonic() < deadline:
            export = admin.get(
                "/admin/v1/usage/export", params={"team_id": team_id, "format": "jsonl"}
            )
            for line in export.text.splitlines():
                row = json.loads(line)
                if row["request_id"] == request_id:
                    return dict(row)
            time.sleep(0.05)
    raise AssertionError(f"{request_id} did not settle")


def _history(page: Page) -> dict[str, list[str]]:
    """The history table's rows by status: [what happened, when, after]."""
    rows = page.get_by_role("region", name="Status history").get_by_role("row")
    found = {}
    for row in rows.all()[1:]:
        cells = [cell.inner_text().strip() for cell in row.get_by_role("cell").all()]
        found[cells[0]] = cells[1:]
    return found


@pytest.fixture(scope="module")
def gateway(redis_url: str, emulator: Emulator) -> Iterator[Gateway]:
    """A gateway that asks fal every poll (none shared): the emulator's jobs run for less time
    than the polls a gateway shares by default, and would seldom be seen running."""
    with Gateway(redis_url, emulator.url, {"status_coalesce_interval": 0}) as running:
        yield running


def test_a_polled_job_shows_when_it_ran_and_how_long_it_took(
    watched: WatchedPage, gateway: Gateway
) -> None:
    team_id = f"hist-{secrets.token_hex(3)}"
    gateway.ensure_team(team_id, 10**7)
    token, _ = gateway.new_key("history", team_id=team_id)
    with gateway.client(token) as caller:
        polled = submit(caller, KONTEXT, valid_body(KONTEXT))
        wait_status(caller, polled["status_url"])
        assert caller.get(polled["response_url"]).status_code == 200
        unpolled = submit(caller, KONTEXT, valid_body(KONTEXT))
        time.sleep(1.0)  # done by now, and nobody asked how it was going
        assert caller.get(unpolled["response_url"]).status_code == 200
    entry = _settled_entry(gateway, team_id, polled["request_id"])
    assert isinstance(entry["seconds"], float)
    assert 0 < entry["seconds"] < 20
    _settled_entry(gateway, team_id, unpolled["request_id"])

    page = watched.page
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/console/jobs?team_id={team_id}")
    row = page.get_by_role("row").filter(has_text=polled["request_id"][:8])
    expect(row.get_by_role("cell").nth(6)).to_have_text(SECONDS)
    row.get_by_role("link").first.click()
    steps = _history(page)
    assert list(steps) == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert steps["IN_PROGRESS"][0] == "Seen running"
    assert steps["IN_PROGRESS"][1].endswith(" UTC")
    assert steps["COMPLETED"][0] == "Ended: charged"
    assert SECONDS.match(steps["COMPLETED"][2])
    expect(page.get_by_text(re.compile(r"^Took \d+\.\d\d s from submission"))).to_be_visible()

    page.goto(f"{gateway.url}/console/jobs/{team_id}/{unpolled['request_id']}")
    steps = _history(page)
    assert steps["IN_PROGRESS"][1] == "not seen: nobody polled its status while it ran"
    assert steps["IN_PROGRESS"][2] == ""
    assert steps["COMPLETED"][0] == "Ended: charged"

    page.context.clear_cookies()
    portal.sign_in(page, gateway, token)
    page.goto(f"{gateway.url}/portal/jobs")
    row = page.get_by_role("row").filter(has_text=polled["request_id"][:8])
    expect(row.get_by_role("cell").nth(3)).to_have_text(SECONDS)
    row.get_by_role("link").first.click()
    steps = _history(page)
    assert steps["IN_PROGRESS"][0] == "Seen running"
    assert steps["COMPLETED"][0] == "Ended: charged"
