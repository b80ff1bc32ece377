"""fal's bill, matched: jobs tagged at fal with their team and key, fal's billable units kept on
each usage record, the per-request usage a page at a time, and the reconciliation report that
flags an endpoint fal bills differently from the gateway's prices."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.jobs import IMAGE_TO_IMAGE, INPAINTING, KONTEXT, run, submit, valid_body, wait_status
from tests.limits.conftest import client_for, new_team, settled_when, team_state
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

FUNDS = 10_000_000
HD = "square_hd"
"""1024x1024 outputs: 1,048,576 pixels, 36,701 micros at $0.035/MP; one unit at fal."""


def records(gateway: Gateway, team: str, **query: Any) -> dict[str, Any]:
    with gateway.admin() as admin:
        response = admin.get("/admin/v1/usage/records", params={"team_id": team, **query})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def settled_records(gateway: Gateway, team: str, count: int) -> list[dict[str, Any]]:
    settled_when(lambda: len(records(gateway, team)["records"]) == count)
    found: list[dict[str, Any]] = records(gateway, team)["records"]
    return found


def test_jobs_are_tagged_at_fal_with_their_team_and_key(
    fleet: list[Gateway], fast_emulator: Emulator
) -> None:
    gateway = fleet[0]
    team = new_team(gateway, FUNDS)
    token, key = gateway.new_key(team_id=team)
    log = UpstreamLog(fast_emulator)
    # The caller's valid tags ride along; its own "team" loses to the gateway's; a reserved or
    # malformed pair is dropped, as fal drops it; past fal's 10 pairs, the first ones are kept.
    caller = ",".join(
        ["env=Prod", "team=spoofed", "fal.cost=0", "bad key=1", "novalue"]
        + [f"t{n}={n}" for n in range(12)]
    )
    with gateway.client(token) as client:
        headers = {"X-Fal-Tags": caller}
        assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT), headers=headers).is_success
        synced = client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT))
        assert synced.status_code == 200
    queued, sync = log.submits()
    own = {"team": team, "key": key["id"]}
    assert queued["tags"] == {**own, "env": "Prod", **{f"t{n}": str(n) for n in range(7)}}
    assert sync["tags"] == own
    assert token.split("_")[-1] not in json.dumps([queued["tags"], sync["tags"]])


def test_usage_records_keep_fals_billable_units(fleet: list[Gateway]) -> None:
    gateway = fleet[1]
    team = new_team(gateway, FUNDS)
    with client_for(gateway, team) as client:
        body = valid_body(IMAGE_TO_IMAGE, image_size="square", num_images=2)
        polled = run(client, IMAGE_TO_IMAGE, body).headers["x-fal-request-id"]
        synced = client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT))
        # Never polled: only fal's webhook ends it, and fal's webhook does not say the units.
        hooked = submit(client, KONTEXT, valid_body(KONTEXT))["request_id"]
    by_id = {r["request_id"]: r for r in settled_records(gateway, team, 3)}
    # 512x512 outputs: each a quarter of fal's megapixel, each billed one unit (rounded up).
    assert by_id[polled]["billable_units"] == 2
    assert (by_id[polled]["megapixels"], by_id[polled]["list_cost_micros"]) == (0.524288, 18352)
    assert by_id[polled]["price_version"] is None  # until prices are versioned
    assert by_id[synced.headers["x-fal-request-id"]]["billable_units"] == 1
    assert by_id[hooked]["billable_units"] == 1


def test_usage_records_page_by_cursor(fleet: list[Gateway]) -> None:
    gateway = fleet[2]
    team = new_team(gateway, FUNDS)
    with client_for(gateway, team) as client:
        for _ in range(3):
            assert client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 200
    every = settled_records(gateway, team, 3)
    first = records(gateway, team, limit=2)
    assert first["records"] == every[:2]
    assert first["next"] == f"{team}:{every[1]['id']}"
    last = records(gateway, team, limit=2, after=first["next"])
    assert (last["records"], last["next"]) == (every[2:], None)
    with gateway.admin() as admin:
        bad = admin.get("/admin/v1/usage/records", params={"after": "nope"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "after"]
    listed = gateway.cli("usage", "records", "--team", team, "--limit", "2", "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [
        r["id"] for r in every[:2]
    ]
    assert listed.stderr.strip().endswith(f"next: {first['next']}")
    every_page = gateway.cli("usage", "records", "--team", team, "--limit", "2", "--all")
    assert every_page.returncode == 0, every_page.stderr
    header, *rows = every_page.stdout.splitlines()
    assert header.endswith("megapixels,list_cost_micros,billable_units,price_version")
    assert len(rows) == 3


def test_the_reconciliation_flags_an_endpoint_fal_bills_otherwise(
    fast_emulator: Emulator, knobs: Any
) -> None:
    knobs(units_factor={INPAINTING: 2.0})  # fal bills twice its published rule here
    with RedisServer() as redis, Gateway(redis.url, fast_emulator.url) as gateway:
        team = new_team(gateway, FUNDS)
        with client_for(gateway, team) as client:
            fair = run(client, IMAGE_TO_IMAGE, valid_body(IMAGE_TO_IMAGE, image_size=HD))
            billed_twice = run(client, INPAINTING, valid_body(INPAINTING, image_size=HD))
        settled_records(gateway, team, 2)
        with gateway.admin() as admin:
            report = admin.get("/admin/v1/reconciliation", params={"tolerance": "0.05"}).json()
        rows = {row["endpoint"]: row for row in report["rows"]}
        # 36,701 micros at the gateway's list price against 35,000 for fal's unit: within 5%.
        assert rows[IMAGE_TO_IMAGE]["flags"] == []
        assert rows[IMAGE_TO_IMAGE]["price_ratio"] == pytest.approx(1.0486, abs=1e-4)
        assert (rows[INPAINTING]["billable_units"], rows[INPAINTING]["expected_units"]) == ("2", 1)
        assert rows[INPAINTING]["fal_cost_micros"] == 70_000
        assert rows[INPAINTING]["flags"] == ["price", "units"]
        [flagged] = report["flagged_jobs"]
        assert flagged["request_id"] == billed_twice.headers["x-fal-request-id"]
        assert fair.headers["x-fal-request-id"] != flagged["request_id"]
        shown = gateway.cli("usage", "reconcile")
        assert shown.returncode == 0, shown.stderr
        assert flagged["request_id"] in shown.stdout
        assert "price,units" in shown.stdout


def _funded_team(gateway: Gateway, **limits: Any) -> str:
    return new_team(gateway, FUNDS, **limits)


@pytest.mark.parametrize(
    ("rule", "charged"),
    [
        (None, 70_000),  # the default: what fal billed (2 units at 35,000)
        ("refund", 0),
        ("charge_estimate", 2 * 36_701),  # its reservation
    ],
)
def test_a_failed_job_costs_what_its_teams_rule_says(
    fleet: list[Gateway], knobs: Any, rule: str | None, charged: int
) -> None:
    gateway = fleet[0]
    team = _funded_team(gateway, **({"failed_job": rule} if rule else {}))
    knobs(fail_job_rate=1.0, failed_run_units=2)  # fal bills GPU time of the failed run
    with client_for(gateway, team) as client:
        body = valid_body(IMAGE_TO_IMAGE, num_images=2, image_size=HD)
        failed = run(client, IMAGE_TO_IMAGE, body)
        assert failed.status_code == 500
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    assert team_state(gateway, team)["balance_micros"] == FUNDS - charged
    [record] = records(gateway, team)["records"]
    assert (record["outcome"], record["billable_units"], record["cost_micros"]) == (
        "failed",
        2,
        charged,
    )


def test_a_failed_job_fal_did_not_bill_is_refunded_by_default(
    fleet: list[Gateway], knobs: Any
) -> None:
    gateway = fleet[1]
    team = _funded_team(gateway)
    knobs(fail_job_rate=1.0)
    with client_for(gateway, team) as client:
        assert (
            run(client, IMAGE_TO_IMAGE, valid_body(IMAGE_TO_IMAGE, image_size=HD)).status_code
            == 500
        )
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    assert team_state(gateway, team)["balance_micros"] == FUNDS


@pytest.mark.parametrize(
    ("rule", "charged"),
    [(None, 35_000), ("refund", 0), ("charge_estimate", 36_701)],
)
def test_a_job_cancelled_while_running_costs_what_its_teams_rule_says(
    fleet: list[Gateway], knobs: Any, rule: str | None, charged: int
) -> None:
    gateway = fleet[2]
    team = _funded_team(gateway, **({"cancelled_running": rule} if rule else {}))
    knobs(run_time=30, failed_run_units=1)
    with client_for(gateway, team) as client:
        submitted = submit(client, IMAGE_TO_IMAGE, valid_body(IMAGE_TO_IMAGE, image_size=HD))
        wait_status(client, submitted["status_url"], "IN_PROGRESS")
        assert client.put(submitted["cancel_url"]).status_code == 202
        wait_status(client, submitted["status_url"])
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    assert team_state(gateway, team)["balance_micros"] == FUNDS - charged
    [record] = records(gateway, team)["records"]
    assert (record["outcome"], record["cost_micros"]) == ("cancelled", charged)
    with gateway.admin() as admin:
        [day] = admin.get("/admin/v1/usage", params={"team_id": team}).json()["usage"]
    assert day["failed"] == 0  # the caller's choice, not a failure


def test_charge_rules_are_team_settings(fleet: list[Gateway]) -> None:
    gateway = fleet[0]
    team = _funded_team(gateway)
    shown = team_state(gateway, team)
    assert (shown["failed_job"], shown["cancelled_running"]) == ("charge_billable_units",) * 2
    with gateway.admin() as admin:
        wrong = admin.patch(f"/admin/v1/teams/{team}", json={"failed_job": "sometimes"})
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0]["loc"] == ["body", "failed_job"]
    changed = gateway.cli(
        "teams", "limits", team, "--failed-job", "refund", "--cancelled-running", "charge_estimate"
    )
    assert changed.returncode == 0, changed.stderr
    shown = team_state(gateway, team)
    assert (shown["failed_job"], shown["cancelled_running"]) == ("refund", "charge_estimate")
