"""The console's pages in a real browser, on a real gateway: a team created and credited (the
ledger shows the note), a key created with its secrets shown once, a job run with that key seen
on the usage and jobs pages (its image through the gateway's file links), the key revoked; bad
form input answered on the page; every change refused without the session's CSRF token."""

from __future__ import annotations

import secrets
import time

import httpx
from playwright.sync_api import expect

from gateway.console.formats import money
from tests.jobs import INPAINTING, run, valid_body
from tests.servers import Gateway
from tests.web.conftest import WatchedPage
from tests.web.console import go_to, sign_in, signed_in_client


def _team_cost(gateway: Gateway, team_id: str) -> int:
    """The team's settled cost today, once its one job has settled."""
    deadline = time.monotonic() + 20
    with gateway.admin() as admin:
        while time.monotonic() < deadline:
            rows = admin.get("/admin/v1/usage", params={"team_id": team_id}).json()["usage"]
            if rows:
                return int(rows[0]["cost_micros"])
            time.sleep(0.05)
    raise AssertionError("the job did not settle")


def test_team_key_job_and_revocation(watched: WatchedPage, gateway: Gateway) -> None:
    page = watched.page
    team_id = f"web-{secrets.token_hex(3)}"
    sign_in(page, gateway)

    go_to(page, "Teams")
    page.get_by_label("Id", exact=True).fill(team_id)
    page.get_by_label("Name", exact=True).fill("Acme studio")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Acme studio")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Team Acme studio created")

    page.get_by_label("Amount (currency units)").fill("25")
    page.get_by_label("Note", exact=True).fill("prepaid invoice 42")
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_have_text("Credited; balance 25.00")
    ledger = page.get_by_role("row").filter(has_text="prepaid invoice 42")
    expect(ledger).to_contain_text("25.00")

    go_to(page, "Keys")
    page.get_by_label("Team", exact=True).last.select_option(team_id)
    page.get_by_label("Name", exact=True).fill("render farm")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#secret").inner_text().strip()
    webhook_secret = page.locator("#webhook").inner_text().strip()
    assert secret.startswith("fgw_")
    assert webhook_secret
    expect(page.get_by_role("button", name="Copy api key")).to_be_visible()
    page.get_by_role("link", name="Done: go to the key").click()
    expect(page.get_by_role("heading", name="render farm")).to_be_visible()
    assert secret not in page.content()
    assert webhook_secret not in page.content()

    with gateway.client(secret) as caller:
        result = run(caller, INPAINTING, valid_body(INPAINTING))
    assert result.status_code == 200
    cost = _team_cost(gateway, team_id)

    go_to(page, "Usage")
    page.get_by_label("Team", exact=True).select_option(team_id)
    page.get_by_role("button", name="Show").click()
    row = page.get_by_role("row").filter(has_text=INPAINTING)
    expect(row).to_contain_text(money(cost))
    expect(page.get_by_role("img", name="Spend per day")).to_be_visible()
    download = page.get_by_role("link", name="Download as CSV").get_attribute("href")
    csv = page.request.get(f"{gateway.url}{download}")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text().splitlines()[1] == f"{team_id},{INPAINTING},1,0,1,0.003072,{cost}"
    assert httpx.get(f"{gateway.url}{download}").status_code == 303  # signed in only

    go_to(page, "Jobs")
    page.get_by_label("Team", exact=True).select_option(team_id)
    page.get_by_role("button", name="Show").click()
    job = page.get_by_role("row").filter(has_text=INPAINTING)
    expect(job).to_contain_text("charged")
    job.get_by_role("link").first.click()
    thumbnail = page.get_by_role("img", name="Result image 1")
    expect(thumbnail).to_be_visible()
    assert "/files/" in (thumbnail.get_attribute("src") or "")
    assert thumbnail.evaluate("image => image.complete && image.naturalWidth") > 0

    go_to(page, "Keys")
    page.get_by_role("link", name="render farm").click()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("status")).to_have_text("Key render farm revoked")
    with gateway.client(secret) as caller:
        assert caller.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 401


def test_bad_input_is_answered_on_the_page(watched: WatchedPage, gateway: Gateway) -> None:
    page = watched.page
    gateway.ensure_team("web-bad-input")
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/console/teams/web-bad-input")
    page.get_by_label("Amount (currency units)").fill("0.0000001")
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("alert")).to_contain_text("Amount (currency units):")
    page.get_by_label("Daily cap (currency units)").fill("lots")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("alert")).to_contain_text("Daily cap (currency units):")
    expect(page.get_by_label("Daily cap (currency units)")).to_have_value("lots")
    page.get_by_label("Daily cap (currency units)").fill("12.5")
    page.get_by_label("Price multiplier").fill("1.25")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("status")).to_have_text("Limits saved")
    with gateway.admin() as admin:
        team = admin.get("/admin/v1/teams/web-bad-input").json()
    assert team["limits"]["daily_cap_micros"] == 12_500_000
    assert team["price_multiplier"] == "1.25"
    with signed_in_client(gateway) as (client, csrf):
        answer = client.post("/console/keys", data={"csrf": csrf, "name": ""})
        assert answer.status_code == 200
        assert 'role="alert"' in answer.text


CHANGES = [
    "/console/teams",
    "/console/teams/web-csrf/credits",
    "/console/teams/web-csrf/limits",
    "/console/teams/web-csrf/policy",
    "/console/teams/web-csrf/prices",
    "/console/teams/web-csrf/prices/clear",
    "/console/prices",
    "/console/prices/1/cancel",
    "/console/teams/web-csrf/alert-webhook",
    "/console/keys",
    "/console/keys/{key}/revoke",
    "/console/keys/{key}/webhook-secret",
    "/console/keys/{key}/limits",
    "/console/keys/{key}/policy",
    "/console/deliveries/nothing/replay",
    "/console/accounts/fal-anything",
]


def test_every_change_needs_the_csrf_token(gateway: Gateway) -> None:
    _, created = gateway.new_key("csrf target", team_id="web-csrf")
    data = {"name": "forged", "amount_micros": "1", "enabled": "false"}
    with signed_in_client(gateway) as (client, _):
        for route in CHANGES:
            path = route.format(key=created["id"])
            assert client.post(path, data=data).status_code == 403, path
            assert client.post(path, data={**data, "csrf": "guessed"}).status_code == 403, path
    with gateway.admin() as admin:
        key = admin.get(f"/admin/v1/keys/{created['id']}").json()
    assert key["status"] == "active"


def test_policies_are_edited_as_json_checked_by_the_admin_model(
    watched: WatchedPage, gateway: Gateway
) -> None:
    page = watched.page
    _, created = gateway.new_key("policy target", team_id="web-policy")
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/console/teams/web-policy")
    page.get_by_label("Policy (JSON)").fill('{"max_num_images": "many"}')
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_contain_text("max_num_images")
    expect(page.get_by_label("Policy (JSON)")).to_have_value('{"max_num_images": "many"}')
    page.get_by_label("Policy (JSON)").fill('{"max_num_images": 2}')
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Policy saved")
    page.goto(f"{gateway.url}/console/keys/{created['id']}")
    page.get_by_label("Policy (JSON)").fill('{"allowed_endpoints": ["fal-ai/flux-kontext-lora"]}')
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_have_text("Policy saved")
    with gateway.admin() as admin:
        team = admin.get("/admin/v1/teams/web-policy").json()
        key = admin.get(f"/admin/v1/keys/{created['id']}").json()
    assert team["policy"] == {"max_num_images": 2}
    assert key["policy"]["allowed_endpoints"] == ["fal-ai/flux-kontext-lora"]
