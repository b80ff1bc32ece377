"""Alerts at a local receiver: a team's low balance exactly once per crossing, however many
jobs race across it on two gateway processes, signed with the operator's secret (and with the
team's at its own webhook); a fal account that fal refuses, once."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.jobs import INPAINTING, KONTEXT, submit, valid_body
from tests.peer import Peer, Received
from tests.servers import Gateway
from tests.upstream.pool_stack import ONE, pool_stack, set_knobs

SECRET = "whsec_" + base64.b64encode(b"the operator's alert secret, 32b").decode()
JOBS = 30
COST = 108
"""A 64x48 Kontext edit lists at ceil(64 * 48 * 35000 / 1e6) = 108 micros."""
THRESHOLD = 1500


def _alert_settings(peer: Peer) -> tuple[str, dict[str, Any]]:
    path = f"/alerts/{os.urandom(4).hex()}"
    settings = {
        "alert_webhook_url": f"{peer.url}{path}",
        "alert_webhook_secret": SECRET,
        "reconcile_interval": 0.5,
        "reconcile_audit_interval": 1,
    }
    return path, settings


def _verified(delivery: Received, secret: str) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    payload: dict[str, Any] = Webhook(secret).verify(delivery.body.decode(), headers)
    return payload


def _metric(gateway: Gateway, line_start: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _raised(gateways: list[Gateway], kind: str) -> float:
    """Alerts of ``kind`` the fleet raised (each process counts those its scripts raised)."""
    return sum(_metric(g, f'gateway_alerts_total{{type="{kind}"}}') for g in gateways)


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


async def _race(gateways: list[Gateway], token: str) -> list[int]:
    """``JOBS`` sync runs at once, spread over ``gateways``; their status codes."""
    limits = httpx.Limits(max_connections=JOBS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = asyncio.Event()

        async def one(index: int) -> int:
            await start.wait()
            response = await client.post(
                f"{gateways[index % len(gateways)].url}/sync/{KONTEXT}",
                json=valid_body(KONTEXT),
                headers={"Authorization": f"Bearer {token}"},
            )
            return response.status_code

        tasks = [asyncio.create_task(one(i)) for i in range(JOBS)]
        await asyncio.sleep(0.2)
        start.set()
        return await asyncio.gather(*tasks)


def test_a_low_balance_alert_arrives_signed_exactly_once_per_crossing(peer: Peer) -> None:
    path, settings = _alert_settings(peer)
    emulator_settings = {"runners": 16, "queue_delay": 0, "run_time": 0.05, "log_interval": 0}
    with pool_stack(2, emulator_settings, settings) as (_, fleet):
        first, second = fleet
        team = f"t-{os.urandom(4).hex()}"
        first.ensure_team(team, JOBS * COST, low_balance_micros=THRESHOLD)
        team_path = f"/team-alerts/{os.urandom(4).hex()}"
        with first.admin() as admin:
            hook = admin.put(
                f"/admin/v1/teams/{team}/alert-webhook", json={"url": f"{peer.url}{team_path}"}
            )
        assert hook.status_code == 200, hook.text
        team_secret = hook.json()["secret"]
        token, _ = first.new_key(team_id=team)

        assert asyncio.run(_race(fleet, token)) == [200] * JOBS  # 3,240 down to 0
        [alert] = peer.wait_for_posts(path, 1)
        body = _verified(alert, SECRET)
        assert body["type"] == "team.low_balance"
        assert body["team_id"] == team
        assert body["threshold_micros"] == THRESHOLD
        assert THRESHOLD - COST <= body["balance_micros"] < THRESHOLD
        assert body["message"]
        assert body["time"]
        [own] = peer.wait_for_posts(team_path, 1)
        assert _verified(own, team_secret) == body
        assert SECRET not in alert.body.decode()
        assert team_secret not in own.body.decode()
        assert _raised(fleet, "team.low_balance") == 1  # one crossing, one alert, fleet-wide
        low = "gateway_teams_low_balance "
        _until(lambda: all(_metric(g, low) == 1 for g in fleet))  # every replica's gauge

        with second.admin() as admin:
            credit = {"amount_micros": JOBS * COST, "note": "top-up"}
            admin.post(f"/admin/v1/teams/{team}/credits", json=credit).raise_for_status()
        _until(lambda: all(_metric(g, low) == 0 for g in fleet))  # above again: re-armed
        assert len(peer.posts(path)) == 1

        assert asyncio.run(_race(fleet, token)) == [200] * JOBS
        alerts = peer.wait_for_posts(path, 2)
        assert len(peer.wait_for_posts(team_path, 2)) == 2
        assert _raised(fleet, "team.low_balance") == 2
        assert len({a.headers["webhook-id"] for a in alerts}) == 2
        assert [_verified(a, SECRET)["type"] for a in alerts] == ["team.low_balance"] * 2
    assert len(peer.posts(path)) == 2


def test_a_fal_account_refused_alerts_the_operator_once(peer: Peer) -> None:
    path, settings = _alert_settings(peer)
    with pool_stack(1, {"run_time": 0.1}, settings) as (emulator, (gateway,)):
        token, _ = gateway.new_key()
        set_knobs(emulator, locked_keys=[ONE])
        with gateway.client(token) as client:
            for _ in range(20):  # every submit succeeds: the locked account is failed over
                submit(client, INPAINTING, valid_body(INPAINTING))
        [alert] = peer.wait_for_posts(path, 1)
        body = _verified(alert, SECRET)
        assert body["type"] == "upstream.disabled"
        assert body["account"] == "one"
        assert body["reason"].startswith("User is locked")
        assert "one-key" not in alert.body.decode()  # never the key
        assert _raised([gateway], "upstream.disabled") == 1
    assert len(peer.posts(path)) == 1
