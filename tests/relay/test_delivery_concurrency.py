"""Deliveries go out concurrently, a bounded number at a time per target: a receiver that hangs
holds up only its own deliveries."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer

HELD = {
    # An attempt is never cut short, nor taken over, while the test holds it.
    "webhook_timeout": 120,
    "webhook_claim_idle": 120,
    "webhook_target_concurrency": 1,
}


@pytest.fixture(scope="module")
def held_gateway() -> Iterator[Gateway]:
    # Its own Redis: the only process consuming these deliveries.
    with (
        Emulator({"queue_delay": 0, "run_time": 0.05}) as emulator,
        RedisServer() as redis,
        Gateway(redis.url, emulator.url, HELD) as gateway,
    ):
        yield gateway


def _team_key(gateway: Gateway) -> tuple[str, dict[str, Any]]:
    team = f"t-{os.urandom(4).hex()}"
    gateway.ensure_team(team)
    return gateway.new_key(team_id=team)


def _deliveries(gateway: Gateway, key_id: object) -> list[dict[str, Any]]:
    with gateway.admin() as admin:
        found: list[dict[str, Any]] = admin.get(
            "/admin/v1/deliveries", params={"key_id": str(key_id)}
        ).json()["deliveries"]
    return found


def test_a_hanging_receiver_holds_up_only_its_own_deliveries(
    held_gateway: Gateway, peer: Peer
) -> None:
    slow_token, slow_key = _team_key(held_gateway)
    fast_token, fast_key = _team_key(held_gateway)
    release = threading.Event()
    with Peer() as slow_receiver:
        slow_receiver.gates["/hooks/first"] = release
        try:
            with held_gateway.client(slow_token) as client:
                submit(
                    client,
                    KONTEXT,
                    valid_body(KONTEXT),
                    fal_webhook=f"{slow_receiver.url}/hooks/first",
                )
                slow_receiver.wait_for_posts("/hooks/first", 1)  # now held
                second = submit(
                    client,
                    KONTEXT,
                    valid_body(KONTEXT),
                    fal_webhook=f"{slow_receiver.url}/hooks/second",
                )
                wait_status(client, second["status_url"])  # its delivery is queued
            fast_path = f"/hooks/fast-{os.urandom(4).hex()}"
            with held_gateway.client(fast_token) as client:
                submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=f"{peer.url}{fast_path}")

            # Another team's webhook arrives while the first is still held ...
            peer.wait_for_posts(fast_path, 1)
            assert not release.is_set()
            # ... but the hanging target gets no second delivery at once (one per target here).
            assert [r.path for r in slow_receiver.received] == ["/hooks/first"]
        finally:
            release.set()
        # The second was waiting for its target, not left for a takeover much later.
        slow_receiver.wait_for_posts("/hooks/second", 1)

    deadline = time.monotonic() + 20
    while {d["status"] for d in _deliveries(held_gateway, slow_key["id"])} != {"delivered"}:
        assert time.monotonic() < deadline, _deliveries(held_gateway, slow_key["id"])
        time.sleep(0.1)
    [fast] = _deliveries(held_gateway, fast_key["id"])
    assert (fast["status"], fast["attempts"]) == ("delivered", 1)
