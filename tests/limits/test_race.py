"""No over-spend: many concurrent submits through several gateway processes, one balance."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.jobs import KONTEXT, valid_body, wait_status
from tests.limits.conftest import ledger, new_team, settled_when, team_state, usage
from tests.servers import Emulator, Gateway, UpstreamLog

pytestmark = pytest.mark.on_cluster

SUBMITS = 500
AFFORDABLE = 40
# A 64x48 Kontext edit lists at ceil(64 * 48 * 35000 / 1e6) = 108 micros; at a 1.25 multiplier
# the team pays ceil(108 * 1.25) = 135.
COST = 135


async def _race(gateways: list[Gateway], tokens: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=SUBMITS, max_keepalive_connections=SUBMITS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = asyncio.Event()

        async def one(index: int) -> httpx.Response:
            gateway = gateways[index % len(gateways)]
            await start.wait()
            return await client.post(
                f"{gateway.url}/{KONTEXT}",
                json=valid_body(KONTEXT),
                headers={"Authorization": f"Bearer {tokens[index % len(tokens)]}"},
            )

        tasks = [asyncio.create_task(one(i)) for i in range(SUBMITS)]
        await asyncio.sleep(0.2)
        start.set()
        return await asyncio.gather(*tasks)


def test_exactly_the_affordable_jobs_are_admitted(
    fleet: list[Gateway], fast_emulator: Emulator
) -> None:
    first = fleet[0]
    team = new_team(first, AFFORDABLE * COST, price_multiplier="1.25")
    tokens = [first.new_key(team_id=team)[0] for _ in range(5)]
    upstream = UpstreamLog(fast_emulator)

    responses = asyncio.run(_race(fleet, tokens))

    codes = Counter(r.status_code for r in responses)
    assert codes == {200: AFFORDABLE, 402: SUBMITS - AFFORDABLE}, codes
    assert {r.json()["error_type"] for r in responses if r.status_code == 402} == {
        "insufficient_credit"
    }
    assert len(upstream.submits()) == AFFORDABLE  # refused submits never reached fal
    admitted = [r for r in responses if r.status_code == 200]
    assert {int(r.headers["x-gateway-reserved-micros"]) for r in admitted} == {COST}

    # Every admitted job completes and is settled (through whichever process answers).
    for index, response in enumerate(admitted):
        gateway = fleet[index % len(fleet)]
        token = response.request.headers["authorization"].split(" ")[1]
        with gateway.client(token) as client:
            wait_status(client, response.json()["status_url"])
            assert client.get(response.json()["response_url"]).status_code == 200

    state = team_state(first, team)
    settled_when(lambda: team_state(first, team)["reserved_micros"] == 0)
    state = team_state(first, team)
    rows = usage(first, team_id=team, group_by="team_id")
    entries = ledger(first, team)
    charged = -sum(e["amount_micros"] for e in entries if e["kind"] == "usage")
    assert rows == [
        {
            "team_id": team,
            "requests": AFFORDABLE,
            "failed": 0,
            "images": AFFORDABLE,
            "megapixels": round(AFFORDABLE * 64 * 48 / 1e6, 6),
            "cost_micros": AFFORDABLE * COST,
        }
    ]
    assert charged == AFFORDABLE * COST
    assert state["balance_micros"] == AFFORDABLE * COST - rows[0]["cost_micros"] == 0
    assert state["available_micros"] == 0
