"""Settlement: charged once for what fal produced; every failure path refunded in full."""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Any

import httpx
import pytest

from tests.jobs import IMAGE_TO_IMAGE, INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.limits.conftest import client_for, ledger, new_team, settled_when, team_state, usage
from tests.peer import SilentServer
from tests.servers import Emulator, Gateway, RedisServer, free_port

FUNDS = 10_000_000  # an input the gateway cannot read reserves up to ~7 units


def _untouched(gateway: Gateway, team: str) -> bool:
    state = team_state(gateway, team)
    return bool(state["balance_micros"] == FUNDS and state["reserved_micros"] == 0)


def _usage_outcomes(gateway: Gateway, team: str) -> list[dict[str, Any]]:
    return usage(gateway, team_id=team, group_by="team_id")


def test_success_is_charged_the_actual_output_once(fleet: list[Gateway]) -> None:
    gateway = fleet[0]
    team = new_team(gateway, FUNDS)
    with client_for(gateway, team) as client:
        # 2 images of 512x512 at $0.035/MP: ceil(262144 * 0.035) = 9176 each.
        submitted = submit(
            client, IMAGE_TO_IMAGE, valid_body(IMAGE_TO_IMAGE, image_size="square", num_images=2)
        )
        wait_status(client, submitted["status_url"])
        for _ in range(3):  # fetching again (from any process) does not charge again
            assert client.get(submitted["response_url"]).status_code == 200
        with fleet[1].client(client.headers["authorization"].split(" ")[1]) as other:
            assert other.get(submitted["response_url"]).status_code == 200
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    assert team_state(gateway, team)["balance_micros"] == FUNDS - 2 * 9176
    [entry] = [e for e in ledger(gateway, team) if e["kind"] == "usage"]
    assert (entry["amount_micros"], entry["request_id"]) == (-2 * 9176, submitted["request_id"])
    [row] = _usage_outcomes(gateway, team)
    assert (row["images"], row["failed"]) == (2, 0)


def test_status_polls_alone_settle_the_job(fleet: list[Gateway]) -> None:
    gateway = fleet[1]
    team = new_team(gateway, FUNDS)
    with client_for(gateway, team) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT))
        wait_status(client, submitted["status_url"])  # never fetches the result
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    assert team_state(gateway, team)["balance_micros"] == FUNDS - 108


@pytest.mark.parametrize("status", [500, 503])
def test_submit_fal_refuses_is_refunded(fleet: list[Gateway], knobs: Any, status: int) -> None:
    gateway = fleet[0]
    team = new_team(gateway, FUNDS)
    knobs(fail_submit_rate=1.0, fail_submit_status=status)
    with client_for(gateway, team) as client:
        assert client.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 502
    assert _untouched(gateway, team)


def test_unreachable_fal_is_refunded(redis_server: RedisServer) -> None:
    with Gateway(redis_server.url, f"http://127.0.0.1:{free_port()}") as gateway:
        team = new_team(gateway, FUNDS)
        with client_for(gateway, team) as client:
            assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 502
        assert _untouched(gateway, team)


@pytest.mark.parametrize(
    ("change", "knob"),
    [
        ({}, {"fail_job_rate": 1.0}),  # the runner fails: 500 outcome
        ({"image_url": "http://127.0.0.1:9/gone.png"}, {}),  # fal cannot fetch the input: 422
    ],
)
def test_failed_jobs_are_refunded(
    fleet: list[Gateway], knobs: Any, change: dict[str, Any], knob: dict[str, Any]
) -> None:
    gateway = fleet[2]
    team = new_team(gateway, FUNDS)
    if knob:
        knobs(**knob)
    with client_for(gateway, team) as client:
        submitted = submit(client, KONTEXT, {**valid_body(KONTEXT), **change})
        wait_status(client, submitted["status_url"])
        assert client.get(submitted["response_url"]).status_code >= 400
    settled_when(lambda: _untouched(gateway, team))
    assert [e for e in ledger(gateway, team) if e["kind"] == "usage"] == []
    [row] = _usage_outcomes(gateway, team)
    assert (row["requests"], row["failed"], row["cost_micros"]) == (1, 1, 0)


def test_cancel_before_work_is_refunded_at_once(fleet: list[Gateway], knobs: Any) -> None:
    gateway = fleet[0]
    team = new_team(gateway, FUNDS)
    knobs(queue_delay=30)
    with client_for(gateway, team) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT))
        assert team_state(gateway, team)["reserved_micros"] == 108
        assert client.put(submitted["cancel_url"]).json() == {"status": "OK"}
        assert _untouched(gateway, team)
    [row] = _usage_outcomes(gateway, team)
    assert (row["requests"], row["failed"]) == (1, 0)  # the caller's choice, not a failure


def test_cancel_while_running_is_refunded(fleet: list[Gateway], knobs: Any) -> None:
    gateway = fleet[0]
    team = new_team(gateway, FUNDS)
    knobs(run_time=30)
    with client_for(gateway, team) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT))
        wait_status(client, submitted["status_url"], "IN_PROGRESS")
        assert client.put(submitted["cancel_url"]).status_code == 202
        wait_status(client, submitted["status_url"])
    settled_when(lambda: _untouched(gateway, team))


def test_reconciler_settles_jobs_nobody_asks_about(
    redis_server: RedisServer, fast_emulator: Emulator
) -> None:
    fast = {"reconcile_interval": 0.2, "reconcile_after": 0.3}
    with Gateway(redis_server.url, fast_emulator.url, fast) as gateway:
        team = new_team(gateway, FUNDS)
        with client_for(gateway, team) as client:
            submit(client, KONTEXT, valid_body(KONTEXT))  # then never polled
        settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
        assert team_state(gateway, team)["balance_micros"] == FUNDS - 108


def test_killed_gateway_mid_submit_is_refunded_by_another(
    redis_server: RedisServer, fast_emulator: Emulator
) -> None:
    # This gateway admits, then waits on a fal that never answers: kill it right there.
    with (
        SilentServer() as hanging,
        Gateway(redis_server.url, hanging.url, {"upstream_timeout": 60}) as victim,
    ):
        team = new_team(victim, FUNDS)
        token, _ = victim.new_key(team_id=team, max_concurrent=1)
        with httpx.Client(timeout=60) as client, contextlib.suppress(httpx.ReadTimeout):
            client.post(
                f"{victim.url}/{KONTEXT}",
                json=valid_body(KONTEXT),
                headers={"Authorization": f"Bearer {token}"},
                timeout=1.0,
            )
        assert team_state(victim, team)["reserved_micros"] == 108
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()

    survivor_settings = {"reconcile_interval": 0.2, "reconcile_after": 0.1, "bind_grace": 1.0}
    with Gateway(redis_server.url, fast_emulator.url, survivor_settings) as survivor:
        settled_when(lambda: _untouched(survivor, team))
        [refunded] = usage(survivor, team_id=team, group_by="team_id")
        assert (refunded["requests"], refunded["cost_micros"]) == (1, 0)
        with survivor.client(token) as client:  # the lease went with the refund
            assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200


def test_leases_of_lost_jobs_expire(
    redis_server: RedisServer, fast_emulator: Emulator, knobs: Any
) -> None:
    knobs(queue_delay=30)  # jobs stay in flight
    with Gateway(redis_server.url, fast_emulator.url, {"lease_ttl": 2.0}) as gateway:
        team = new_team(gateway, FUNDS)
        with client_for(gateway, team, max_concurrent=1) as client:
            assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200
            busy = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT))
            assert busy.status_code == 429
            assert busy.json()["error_type"] == "concurrency_limit"
            time.sleep(2.1)
            assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200
