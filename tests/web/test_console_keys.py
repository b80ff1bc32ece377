"""A key's page of the console in a real browser, on a gateway with a Redis of its own (the old
webhook secret stops signing at once, a refused delivery dies after two quick retries): limits
set on the form are stored and enforced; a new webhook secret is shown once and signs the next
delivery alone; a dead delivery replayed from its job's page is delivered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook, WebhookVerificationError

from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.peer import Peer, Received
from tests.servers import Emulator, Gateway, RedisServer
from tests.web.conftest import WatchedPage
from tests.web.console import sign_in

SETTINGS = {"webhook_secret_grace": 0, "webhook_retry_schedule": "0.2,0.2"}


@pytest.fixture(scope="module")
def own_gateway(emulator: Emulator) -> Iterator[Gateway]:
    with RedisServer() as store, Gateway(store.url, emulator.url, SETTINGS) as gateway:
        yield gateway


def _hook(peer: Peer, name: str) -> tuple[str, str]:
    path = f"/hooks/console-{name}-{os.urandom(4).hex()}"
    return path, f"{peer.url}{path}"


def _webhook_job(gateway: Gateway, token: str, url: str) -> str:
    """A job of ``token`` with a webhook to ``url``, run to its end: its request id."""
    with gateway.client(token) as api:
        job = submit(api, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
        wait_status(api, job["status_url"])
    return str(job["request_id"])


def _signed_by(delivery: Received, secret: str) -> bool:
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    try:
        Webhook(secret).verify(delivery.body.decode(), headers)
    except WebhookVerificationError:
        return False
    return True


def _limits(gateway: Gateway, key_id: str) -> dict[str, Any]:
    """The key's limits as the admin API reports them (those set)."""
    with gateway.admin() as admin:
        limits = admin.get(f"/admin/v1/keys/{key_id}").json()["limits"]
    return {name: value for name, value in limits.items() if value is not None}


def test_limits_set_on_the_key_page_are_stored_and_enforced(
    watched: WatchedPage, own_gateway: Gateway
) -> None:
    token, key = own_gateway.new_key("capped")
    page = watched.page
    sign_in(page, own_gateway)
    page.goto(f"{own_gateway.url}/console/keys/{key['id']}")
    page.get_by_label("Spend cap (currency units)").fill("0.000001")
    page.get_by_label("Max concurrent").fill("3")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("status")).to_have_text("Limits saved")
    expect(page.get_by_label("Spend cap (currency units)")).to_have_value("0.000001")
    expect(page.get_by_label("Max concurrent")).to_have_value("3")
    assert _limits(own_gateway, str(key["id"])) == {"spend_cap_micros": 1, "max_concurrent": 3}
    with own_gateway.client(token) as api:
        refused = api.post(f"/{KONTEXT}", json=valid_body(KONTEXT))
    assert (refused.status_code, refused.json()["error_type"]) == (402, "key_spend_cap")

    page.get_by_label("Spend cap (currency units)").fill("")  # blank: no cap
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("status")).to_have_text("Limits saved")
    expect(page.get_by_label("Spend cap (currency units)")).to_have_value("")
    assert _limits(own_gateway, str(key["id"])) == {"max_concurrent": 3}
    with own_gateway.client(token) as api:
        submit(api, KONTEXT, valid_body(KONTEXT))


def test_a_new_webhook_secret_is_shown_once_and_signs_alone(
    watched: WatchedPage, own_gateway: Gateway, peer: Peer
) -> None:
    token, key = own_gateway.new_key("rotating")
    old = str(key["webhook_secret"])
    page = watched.page
    sign_in(page, own_gateway)
    page.goto(f"{own_gateway.url}/console/keys/{key['id']}")
    page.get_by_role("button", name="New webhook secret").click()
    expect(page.get_by_role("heading", name="New webhook secret")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("the previous one also signs until")
    new = page.locator("#webhook").inner_text().strip()
    assert new.startswith("whsec_")
    assert new != old
    page.get_by_role("link", name="Done: go to the key").click()
    expect(page.get_by_role("heading", name="rotating")).to_be_visible()
    assert new not in page.content()
    page.reload()
    assert new not in page.content()

    path, url = _hook(peer, "rotated")
    _webhook_job(own_gateway, token, url)
    [delivery] = peer.wait_for_posts(path, 1)
    assert _signed_by(delivery, new)
    assert not _signed_by(delivery, old)  # no grace on this gateway


def test_a_dead_delivery_is_replayed_from_its_jobs_page(
    watched: WatchedPage, own_gateway: Gateway, peer: Peer
) -> None:
    token, key = own_gateway.new_key("hooked")
    path, url = _hook(peer, "dead")
    peer.fail_paths.add(path)
    try:
        request_id = _webhook_job(own_gateway, token, url)
        dead = own_gateway.wait_delivery(str(key["id"]), "dead", timeout=30)
    finally:
        peer.fail_paths.discard(path)
    assert (dead["attempts"], dead["last_status"]) == (3, 500)
    refused = len(peer.posts(path))

    page = watched.page
    sign_in(page, own_gateway)
    page.goto(f"{own_gateway.url}/console/jobs/default/{request_id}")
    deliveries = page.locator("section", has=page.get_by_role("heading", name="Webhook deliveries"))
    row = deliveries.get_by_role("row").filter(has_text=request_id)
    expect(row).to_contain_text("dead")
    expect(row).to_contain_text("answered 500 (HTTP 500)")
    row.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_have_text("Delivery queued again")

    delivered = peer.wait_for_posts(path, refused + 1)[-1]
    assert _signed_by(delivered, str(key["webhook_secret"]))
    own_gateway.wait_delivery(str(key["id"]), "delivered")
    page.reload()
    expect(row).to_contain_text("delivered")
    expect(row.get_by_role("button", name="Replay")).to_have_count(0)
