"""Rate limits, concurrency leases and spending caps, under concurrency across processes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.jobs import KONTEXT, valid_body, wait_status
from tests.limits.conftest import new_team, settled_when, team_state
from tests.servers import Emulator, Gateway

FUNDS = 10**9


async def _burst(
    gateways: list[Gateway], tokens: list[str], count: int, body: Any = None
) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{gateways[i % len(gateways)].url}/{KONTEXT}",
                    json=body or valid_body(KONTEXT),
                    headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
                )
                for i in range(count)
            )
        )


def test_key_rate_limit_admits_the_burst_and_says_when_to_retry(fleet: list[Gateway]) -> None:
    team = new_team(fleet[0], FUNDS)
    # One request per 5 s after the burst: the burst's 30 requests land well inside that.
    token, _ = fleet[0].new_key(team_id=team, rate_per_minute=12, rate_burst=5)

    responses = asyncio.run(_burst(fleet, [token], 30))

    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 5, 429: 25}, codes
    refused = [r for r in responses if r.status_code == 429]
    for response in refused:
        assert response.json()["error_type"] == "rate_limited"
        assert 1 <= int(response.headers["retry-after"]) <= 5
        assert response.headers["ratelimit-limit"] == "12"
        assert response.headers["ratelimit-remaining"] == "0"
    admitted = [r for r in responses if r.status_code == 200]
    assert all(r.headers["ratelimit-limit"] == "12" for r in admitted)
    assert sorted(int(r.headers["ratelimit-remaining"]) for r in admitted) == [0, 1, 2, 3, 4]

    time.sleep(max(int(r.headers["retry-after"]) for r in refused))  # honest: one more by then
    with fleet[1].client(token) as client:
        assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200


def test_team_rate_limit_spans_its_keys(fleet: list[Gateway]) -> None:
    team = new_team(fleet[0], FUNDS, rate_per_minute=6, rate_burst=4)
    tokens = [fleet[0].new_key(team_id=team)[0] for _ in range(3)]

    responses = asyncio.run(_burst(fleet, tokens, 24))

    assert Counter(r.status_code for r in responses) == {200: 4, 429: 20}
    assert "this key's team" in next(r for r in responses if r.status_code == 429).json()["detail"]


@contextmanager
def _jobs_running_for(emulator: Emulator, seconds: float) -> Iterator[None]:
    """Jobs outlast a burst however slow the machine (else a lease may free mid-burst)."""
    with emulator.client() as control:
        before = control.get("/_emulator/knobs").json()["run_time"]
        control.patch("/_emulator/knobs", json={"run_time": seconds}).raise_for_status()
        try:
            yield
        finally:
            control.patch("/_emulator/knobs", json={"run_time": before}).raise_for_status()


def test_concurrency_leases_hold_under_concurrency_and_free_on_settlement(
    fleet: list[Gateway], fast_emulator: Emulator
) -> None:
    team = new_team(fleet[0], FUNDS)
    token, _ = fleet[0].new_key(team_id=team, max_concurrent=3)

    with _jobs_running_for(fast_emulator, 3):
        responses = asyncio.run(_burst(fleet, [token], 25))

    assert Counter(r.status_code for r in responses) == {200: 3, 429: 22}
    assert {r.json()["error_type"] for r in responses if r.status_code == 429} == {
        "concurrency_limit"
    }
    with fleet[2].client(token) as client:
        for response in (r for r in responses if r.status_code == 200):
            wait_status(client, response.json()["status_url"])
            client.get(response.json()["response_url"])
        settled_when(lambda: team_state(fleet[0], team)["reserved_micros"] == 0)
        with _jobs_running_for(fast_emulator, 3):
            again = asyncio.run(_burst(fleet, [token], 10))
    assert Counter(r.status_code for r in again) == {200: 3, 429: 7}


def test_key_spend_cap(fleet: list[Gateway]) -> None:
    team = new_team(fleet[0], FUNDS)
    token, _ = fleet[0].new_key(team_id=team, spend_cap_micros=108 * 4)
    codes = Counter(r.status_code for r in asyncio.run(_burst(fleet, [token], 12)))
    assert codes == {200: 4, 402: 8}
    with fleet[0].client(token) as client:
        assert (
            client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).json()["error_type"]
            == "key_spend_cap"
        )


def test_daily_and_monthly_caps(fleet: list[Gateway]) -> None:
    daily = new_team(fleet[0], FUNDS, daily_cap_micros=108 * 3)
    monthly = new_team(fleet[0], FUNDS, monthly_cap_micros=108 * 2)
    for team, allowed, error_type in ((daily, 3, "daily_cap"), (monthly, 2, "monthly_cap")):
        token, _ = fleet[0].new_key(team_id=team)
        responses = asyncio.run(_burst(fleet, [token], 10))
        assert Counter(r.status_code for r in responses) == {200: allowed, 402: 10 - allowed}
        assert {r.json()["error_type"] for r in responses if r.status_code == 402} == {error_type}


def test_price_multiplier_is_the_resellers_margin(fleet: list[Gateway]) -> None:
    team = new_team(fleet[0], FUNDS, price_multiplier="2.5")
    token, _ = fleet[0].new_key(team_id=team)
    with fleet[0].client(token) as client:
        response = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT))
        assert response.headers["x-gateway-estimated-cost-micros"] == "108"
        assert response.headers["x-gateway-reserved-micros"] == "270"
        wait_status(client, response.json()["status_url"])
        client.get(response.json()["response_url"])
    settled_when(lambda: team_state(fleet[0], team)["balance_micros"] == FUNDS - 270)


def test_policy_change_applies_to_the_next_submit_in_every_process(fleet: list[Gateway]) -> None:
    team = new_team(fleet[0], FUNDS)
    token, created = fleet[0].new_key(team_id=team)
    for gateway in fleet:  # every process caches the key's policy
        with gateway.client(token) as client:
            assert (
                client.post(f"/{KONTEXT}", json=valid_body(KONTEXT, num_images=2)).status_code
                == 200
            )
    with fleet[0].admin() as admin:
        admin.put(
            f"/admin/v1/keys/{created['id']}/policy", json={"max_num_images": 1}
        ).raise_for_status()
    for gateway in fleet:
        with gateway.client(token) as client:
            refused = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT, num_images=2))
            assert refused.status_code == 422, refused.text
