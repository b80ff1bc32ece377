"""A realistic run through the gateway: every endpoint with ``?fal_webhook=``, a job that fails,
one cancelled in the queue and a sync run. Every fal webhook is answered 2xx at its first
attempt, every caller's webhook is relayed, and the money adds up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.jobs import ALL_ENDPOINTS, KONTEXT, submit, valid_body, wait_status
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator({"queue_delay": 0, "run_time": 0.2, "runners": 4}) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, emulator: Emulator) -> Iterator[Gateway]:
    with Gateway(redis_server.url, emulator.url) as running:
        yield running


def _hook(peer: Peer) -> tuple[str, str]:
    path = f"/hooks/real-{os.urandom(4).hex()}"
    return path, f"{peer.url}{path}"


def _payload(peer: Peer, path: str, secret: str) -> dict[str, Any]:
    delivery = peer.wait_for_posts(path, 1)[0]
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    payload: dict[str, Any] = Webhook(secret).verify(delivery.body.decode(), headers)
    return payload


def test_a_realistic_run(gateway: Gateway, emulator: Emulator, peer: Peer) -> None:
    team = f"t-{os.urandom(4).hex()}"
    gateway.ensure_team(team)
    token, key = gateway.new_key(team_id=team)
    secret = str(key["webhook_secret"])
    hooks: dict[str, tuple[str, str]] = {}  # request id -> (hook path, expected status)
    status_urls = []
    with gateway.client(token) as client, emulator.client() as control:
        for endpoint in ALL_ENDPOINTS:
            path, url = _hook(peer)
            done = submit(client, endpoint, valid_body(endpoint), fal_webhook=url)
            hooks[done["request_id"]] = (path, "OK")
            status_urls.append(done["status_url"])

        path, url = _hook(peer)
        failing = valid_body(KONTEXT, image_url="http://127.0.0.1:9/none.png")
        hooks[submit(client, KONTEXT, failing, fal_webhook=url)["request_id"]] = (path, "ERROR")

        control.patch("/_emulator/knobs", json={"queue_delay": 30}).raise_for_status()
        try:
            path, url = _hook(peer)
            queued = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
            cancelled = client.put(queued["cancel_url"])
        finally:
            control.patch("/_emulator/knobs", json={"queue_delay": 0}).raise_for_status()
        assert cancelled.json() == {"status": "OK"}
        hooks[queued["request_id"]] = (path, "ERROR")

        sync = client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT))
        assert sync.status_code == 200, sync.text

        for request_id, (path, status) in hooks.items():
            payload = _payload(peer, path, secret)
            assert (payload["request_id"], payload["status"]) == (request_id, status)
            assert emulator.url not in str(payload)

        attempts = control.get("/_emulator/webhooks").json()["attempts"]
        ours = [a for a in attempts if a["request_id"] in hooks]
        assert sorted(a["request_id"] for a in ours) == sorted(hooks)  # one attempt each
        assert {(a["attempt"], a["status_code"]) for a in ours} == {(1, 200)}

        upstream = UpstreamLog(emulator)
        for status_url in status_urls:  # answered from the gateway's record now
            assert wait_status(client, status_url).json()["status"] == "COMPLETED"
        assert upstream.requests() == []

    with gateway.admin() as admin:
        state = admin.get(f"/admin/v1/teams/{team}").json()
        ledger = admin.get(f"/admin/v1/teams/{team}/ledger").json()["entries"]
    assert state["reserved_micros"] == 0
    charges = [e for e in ledger if e["kind"] == "usage"]
    assert len(charges) == 5  # four queued outputs and the sync run; failures are refunded
    assert state["balance_micros"] == Gateway.FUNDS + sum(e["amount_micros"] for e in charges)
