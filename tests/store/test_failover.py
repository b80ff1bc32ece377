"""The gateway through a Redis failover, with real primaries, replicas and a sentinel: while no
primary is reachable submits are 503 (never 500), then they succeed by themselves, without a
restart; no money is lost or charged twice, and webhook deliveries resume."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import httpx

from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.limits.conftest import ledger, new_team, settled_when, team_state
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer
from tests.store.replication import (
    Sentinel,
    SwitchableName,
    promote,
    sentinel_url,
    wait_replicated,
)

FUNDS = 10**9
COST = 135
"""A 64x48 Kontext edit at a 1.25 price multiplier (see tests/limits/test_race.py)."""


def _post(client: httpx.Client) -> httpx.Response:
    return client.post(f"/{KONTEXT}", json=valid_body(KONTEXT))


def _unavailable(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("retry-after") == "1"
        and response.json()["error_type"] == "gateway_unavailable"
    )


Job = dict[str, Any]
"""A submit's answer: ``request_id``, ``status_url``, ``response_url``."""


def _submit_until_served(client: httpx.Client, served: int = 5) -> tuple[Counter[int], list[Job]]:
    """Submit one after another until ``served`` in a row are accepted (40 s at most): the
    status codes seen, and the jobs accepted."""
    codes: Counter[int] = Counter()
    accepted: list[Job] = []
    in_a_row = 0
    deadline = time.monotonic() + 40
    while in_a_row < served:
        assert time.monotonic() < deadline, f"not served again: {codes}"
        response = _post(client)
        codes[response.status_code] += 1
        if response.status_code == 200:
            accepted.append(response.json())
            in_a_row += 1
        else:
            assert _unavailable(response), (response.status_code, response.text)
            in_a_row = 0
            time.sleep(0.05)
    return codes, accepted


def _readyz(gateway: Gateway) -> httpx.Response:
    return httpx.get(f"{gateway.url}/readyz", timeout=10)


def _until_ready(gateway: Gateway) -> None:
    deadline = time.monotonic() + 20
    while (ready := _readyz(gateway)).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.1)


def _charged_once_each(gateway: Gateway, team: str, client: httpx.Client, jobs: list[Job]) -> None:
    """Every accepted job completes and is charged exactly once; the balance is the credit
    less the charges, nothing stays reserved."""
    for job in jobs:
        wait_status(client, job["status_url"], timeout=30)
        assert client.get(job["response_url"]).status_code == 200
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0, timeout=30)
    usage = [e for e in ledger(gateway, team) if e["kind"] == "usage"]
    assert Counter(e["request_id"] for e in usage) == Counter(j["request_id"] for j in jobs)
    charged = -sum(int(e["amount_micros"]) for e in usage)
    assert charged == COST * len(jobs)
    assert team_state(gateway, team)["balance_micros"] == FUNDS - charged


def test_readyz_names_a_replica(pair: tuple[RedisServer, RedisServer], emulator: Emulator) -> None:
    _, replica = pair
    with Gateway(replica.url, emulator.url) as gateway:
        ready = _readyz(gateway)
    assert ready.status_code == 503
    assert ready.json()["redis"] == "replica"


def test_sentinel_failover_under_traffic(
    pair: tuple[RedisServer, RedisServer], emulator: Emulator, peer: Peer
) -> None:
    primary, replica = pair
    with Sentinel(primary) as sentinel:
        sentinel.wait_for_replicas(1)
        with Gateway(sentinel_url(sentinel), emulator.url) as gateway:
            team = new_team(gateway, FUNDS, price_multiplier="1.25")
            token, _ = gateway.new_key(team_id=team)
            with gateway.client(token) as client:
                before = [submit(client, KONTEXT, valid_body(KONTEXT)) for _ in range(3)]
                # Redis replicates asynchronously: what the primary acknowledged but had not
                # sent to its replica is lost with it (see the README's operations part).
                wait_replicated(primary, replica)
                assert primary.process is not None
                primary.process.kill()
                codes, after = _submit_until_served(client)
                assert sentinel.primary_port() == replica.port
                assert codes[503] > 0  # the primary was away for a while
                _until_ready(gateway)

                path = f"/hooks/{os.urandom(4).hex()}"
                hooked = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=peer.url + path)
                peer.wait_for_posts(path, 1)
                _charged_once_each(gateway, team, client, [*before, *after, hooked])


def test_a_managed_redis_name_moved_to_the_promoted_replica(
    pair: tuple[RedisServer, RedisServer], emulator: Emulator
) -> None:
    old, new = pair
    with SwitchableName(old) as name, Gateway(name.url, emulator.url) as gateway:
        team = new_team(gateway, FUNDS, price_multiplier="1.25")
        token, _ = gateway.new_key(team_id=team)
        with gateway.client(token) as client, gateway.admin() as admin:
            accepted = [submit(client, KONTEXT, valid_body(KONTEXT))]
            wait_status(client, accepted[0]["status_url"])
            assert _readyz(gateway).status_code == 200
            wait_replicated(old, new)

            promote(new, old)  # the gateway's connections still reach the old one
            assert _unavailable(_post(client))
            refused = admin.post("/admin/v1/keys", json={"name": "k", "team_id": team})
            assert _unavailable(refused)
            not_ready = _readyz(gateway)
            assert (not_ready.status_code, not_ready.json()["redis"]) == (503, "replica")

            name.switch(new)  # new connections reach the new primary; old ones stay open
            codes, after = _submit_until_served(client)
            assert set(codes) <= {200, 503}
            created = admin.post("/admin/v1/keys", json={"name": "k", "team_id": team})
            assert created.status_code == 201, created.text
            _until_ready(gateway)
            _charged_once_each(gateway, team, client, [*accepted, *after])
