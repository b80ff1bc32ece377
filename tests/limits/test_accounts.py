"""Teams, credit and ledger, usage reports, ``/v1/me``: admin API, CLI and metrics."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.jobs import IMAGE_TO_IMAGE, KONTEXT, submit, valid_body, wait_status
from tests.limits.conftest import ledger, new_team, settled_when, team_state, usage
from tests.servers import Gateway

pytestmark = pytest.mark.on_cluster


def _run_job(client: httpx.Client, endpoint: str, body: dict[str, Any]) -> None:
    submitted = submit(client, endpoint, body)
    wait_status(client, submitted["status_url"])
    assert client.get(submitted["response_url"]).status_code == 200


def test_teams_credit_and_ledger(fleet: list[Gateway]) -> None:
    with fleet[0].admin() as admin:
        created = admin.post(
            "/admin/v1/teams", json={"name": "Acme Studio", "price_multiplier": "1.5"}
        )
        assert created.status_code == 201
        team = created.json()
        assert (team["balance_micros"], team["price_multiplier"]) == (0, "1.5")
        assert (
            admin.post("/admin/v1/teams", json={"id": team["id"], "name": "again"}).status_code
            == 409
        )

        first = admin.post(
            f"/admin/v1/teams/{team['id']}/credits", json={"amount_micros": 5000, "note": "top-up"}
        )
        second = admin.post(
            f"/admin/v1/teams/{team['id']}/credits", json={"amount_micros": -1200, "note": "fix"}
        )
        assert (first.json()["balance_micros"], second.json()["balance_micros"]) == (5000, 3800)
        assert (
            admin.post(
                f"/admin/v1/teams/{team['id']}/credits", json={"amount_micros": 0}
            ).status_code
            == 422
        )
        assert (
            admin.post("/admin/v1/teams/nope/credits", json={"amount_micros": 1}).status_code == 404
        )

        limited = admin.patch(
            f"/admin/v1/teams/{team['id']}", json={"daily_cap_micros": 900, "rate_per_minute": 10}
        )
        assert limited.json()["limits"]["daily_cap_micros"] == 900
        assert limited.json()["limits"]["monthly_cap_micros"] is None
        assert team["id"] in [t["id"] for t in admin.get("/admin/v1/teams").json()["teams"]]

    entries = ledger(fleet[0], team["id"])
    assert [(e["kind"], e["amount_micros"], e["balance_micros"], e["note"]) for e in entries] == [
        ("credit", -1200, 3800, "fix"),
        ("credit", 5000, 5000, "top-up"),
    ]


def test_usage_by_key_endpoint_and_day_and_me(fleet: list[Gateway]) -> None:
    gateway = fleet[0]
    team = new_team(gateway, 10**7)
    alice, alice_key = gateway.new_key(team_id=team, name="alice", max_concurrent=5)
    bob, bob_key = gateway.new_key(team_id=team, name="bob")
    with gateway.client(alice) as client:
        _run_job(client, KONTEXT, valid_body(KONTEXT))
        _run_job(client, IMAGE_TO_IMAGE, valid_body(IMAGE_TO_IMAGE, num_images=2))
    with gateway.client(bob) as client:
        _run_job(client, KONTEXT, valid_body(KONTEXT))
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    today = datetime.now(UTC).date().isoformat()

    rows = usage(gateway, team_id=team, group_by="key_id,endpoint")
    assert rows == sorted(rows, key=lambda r: (r["key_id"], r["endpoint"]))
    by = {(r["key_id"], r["endpoint"]): r for r in rows}
    assert by[(alice_key["id"], IMAGE_TO_IMAGE)] == {
        "key_id": alice_key["id"],
        "endpoint": IMAGE_TO_IMAGE,
        "requests": 1,
        "failed": 0,
        "images": 2,
        "megapixels": 0.006144,
        "cost_micros": 216,
    }
    assert by[(bob_key["id"], KONTEXT)]["cost_micros"] == 108
    [day] = usage(gateway, team_id=team, group_by="day")
    assert (day["day"], day["requests"], day["cost_micros"]) == (today, 3, 432)
    assert usage(gateway, key_id=str(alice_key["id"]), group_by="key_id")[0]["requests"] == 2
    assert usage(gateway, team_id=team, endpoint=KONTEXT, group_by="team_id")[0]["requests"] == 2

    with gateway.client(alice) as client:
        me = client.get("/v1/me").json()
    assert me["key"]["id"] == alice_key["id"]
    assert me["key"]["limits"]["max_concurrent"] == 5
    assert "secret" not in json.dumps(me["key"])
    assert me["team"]["balance_micros"] == 10**7 - 432
    assert me["team"]["available_micros"] == 10**7 - 432
    assert me["usage"]["today"] == {
        "requests": 2,
        "failed": 0,
        "images": 3,
        "megapixels": 0.009216,
        "cost_micros": 324,
    }
    assert me["usage"]["this_month"]["cost_micros"] == 324
    assert httpx.get(f"{gateway.url}/v1/me").status_code == 401


def test_usage_over_many_teams(fleet: list[Gateway]) -> None:
    """Reports over every team come from pipelined round trips of a few hundred commands each;
    teams with usage are found wherever they fall among many without."""
    gateway = fleet[1]
    mine = {f"t-{os.urandom(5).hex()}" for _ in range(600)}
    with gateway.admin() as admin:
        for team in mine:
            created = admin.post("/admin/v1/teams", json={"id": team, "name": team})
            assert created.status_code == 201
    jobs = {new_team(gateway, 10**7): n for n in (1, 2, 3)}
    for team, count in jobs.items():
        token, _ = gateway.new_key(team_id=team)
        with gateway.client(token) as client:
            for _ in range(count):
                _run_job(client, KONTEXT, valid_body(KONTEXT))
    mine |= set(jobs)
    settled_when(lambda: all(team_state(gateway, t)["reserved_micros"] == 0 for t in jobs))
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    expected = {t: (n, n * 108) for t, n in jobs.items()}
    for query in ({}, {"from": yesterday}):  # one day; two (teams without usage skipped first)
        rows = [r for r in usage(gateway, group_by="day,team_id", **query) if r["team_id"] in mine]
        assert {r["team_id"]: (r["requests"], r["cost_micros"]) for r in rows} == expected
        assert {r["day"] for r in rows} == {today.isoformat()}


def test_usage_rejects_bad_queries(fleet: list[Gateway]) -> None:
    with fleet[0].admin() as admin:
        assert admin.get("/admin/v1/usage", params={"group_by": "colour"}).status_code == 400
        assert admin.get("/admin/v1/usage", params={"from": "yesterday"}).status_code == 400


def test_teams_and_usage_from_the_cli(fleet: list[Gateway]) -> None:
    gateway = fleet[0]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = gateway.cli(*args)
        assert done.returncode == 0, done.stderr
        return done

    team_id = f"cli-{os.urandom(3).hex()}"
    created = json.loads(
        cli(
            "teams",
            "create",
            "--name",
            "CLI team",
            "--id",
            team_id,
            "--price-multiplier",
            "1.1",
            "--json",
        ).stdout
    )
    assert created["price_multiplier"] == "1.1"
    assert (
        "balance_micros: 250000"
        in cli("teams", "credit", team_id, "250000", "--note", "first").stdout
    )
    cli("teams", "limits", team_id, "--monthly-cap", "100000")
    shown = json.loads(cli("teams", "show", team_id, "--json").stdout)
    assert shown["limits"]["monthly_cap_micros"] == 100000
    assert team_id in cli("teams", "list").stdout
    assert "first" in cli("teams", "ledger", team_id).stdout

    key = json.loads(
        cli(
            "keys", "create", "--name", "k", "--team", team_id, "--max-concurrent", "2", "--json"
        ).stdout
    )
    assert key["limits"]["max_concurrent"] == 2
    assert (
        json.loads(cli("keys", "limits", key["id"], "--rate-per-minute", "99", "--json").stdout)[
            "limits"
        ]["rate_per_minute"]
        == 99
    )
    with gateway.client(key["secret"]) as client:
        _run_job(client, KONTEXT, valid_body(KONTEXT))
    settled_when(lambda: team_state(gateway, team_id)["reserved_micros"] == 0)

    table = cli("usage", "--team", team_id, "--group-by", "key_id,endpoint").stdout
    assert re.search(rf"{key['id']}\s+{KONTEXT}\s+1\s+0\s+1\s+0.003072\s+119", table)
    rows = list(csv.DictReader(io.StringIO(cli("usage", "--team", team_id, "--csv").stdout)))
    assert rows[0]["team_id"] == team_id
    assert rows[0]["cost_micros"] == "119"  # ceil(108 * 1.1)
    assert list(rows[0]) == [
        "day",
        "team_id",
        "key_id",
        "endpoint",
        "requests",
        "failed",
        "images",
        "megapixels",
        "cost_micros",
    ]


def test_metrics_count_admissions_settlements_and_redis(fleet: list[Gateway]) -> None:
    gateway = fleet[1]
    team = new_team(gateway, 200)
    token, _ = gateway.new_key(team_id=team)
    with gateway.client(token) as client:
        _run_job(client, KONTEXT, valid_body(KONTEXT))
        assert client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)).status_code == 402
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    text = httpx.get(f"{gateway.url}/metrics").text
    assert re.search(r'gateway_admissions_total\{outcome="admitted"\} [1-9]', text)
    assert re.search(r'gateway_admissions_total\{outcome="insufficient_credit"\} [1-9]', text)
    assert re.search(r'gateway_settlements_total\{outcome="charged"\} [1-9]', text)
    assert re.search(rf'gateway_settled_cost_micros_total\{{endpoint="{KONTEXT}"\}} [1-9]', text)
    assert 'gateway_redis_duration_seconds_count{operation="admit"}' in text
    assert "gateway_reservations_outstanding" in text
