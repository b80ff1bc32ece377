"""Exports of a team's ledger and of per-request usage, by time range, as CSV or JSON lines,
from the admin API and the CLI."""

from __future__ import annotations

import calendar
import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.limits.exports import PAGE
from gateway.store import redis_keys
from tests.jobs import KONTEXT, run, valid_body
from tests.servers import Gateway, RedisServer


def _team(gateway: Gateway, funds: int = 10**9) -> str:
    team_id = f"x-{os.urandom(4).hex()}"
    gateway.ensure_team(team_id, funds=funds)
    return team_id


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


def _settled(admin: httpx.Client, team_id: str) -> None:
    deadline = time.monotonic() + 20
    while admin.get(f"/admin/v1/teams/{team_id}").json()["reserved_micros"]:
        assert time.monotonic() < deadline, "jobs did not settle"
        time.sleep(0.05)


def test_the_ledger_export_streams_every_entry_in_the_range(
    gateway: Gateway, redis_server: RedisServer
) -> None:
    team_id = _team(gateway, funds=0)
    # More entries than one page, written straight to the stream: one ms apart, from midnight
    # ten days ago (within the ledger's retention).
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400))
    start_ms = int(calendar.timegm(time.strptime(day, "%Y-%m-%d"))) * 1000
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    pipe = client.pipeline(transaction=False)
    for n in range(PAGE + 500):
        fields: dict[Any, Any] = {"kind": "credit", "amount_micros": n, "balance_micros": n}
        pipe.xadd(redis_keys.ledger(team_id), {**fields, "note": f"n{n}"}, id=f"{start_ms + n}-0")
    pipe.execute()
    client.close()
    with gateway.admin() as admin:
        credit = {"amount_micros": 10**9, "note": "test funds"}
        admin.post(f"/admin/v1/teams/{team_id}/credits", json=credit).raise_for_status()
        url = f"/admin/v1/teams/{team_id}/ledger/export"
        every = _lines(admin.get(url, params={"format": "jsonl"}))
        assert len(every) == PAGE + 500 + 1  # and the test funds, credited today
        assert [e["note"] for e in every[:3]] == ["n0", "n1", "n2"]
        assert every[-1]["note"] == "test funds"
        assert every[0]["at"] == f"{day}T00:00:00Z"

        that_day = _lines(admin.get(url, params={"from": day, "to": day, "format": "jsonl"}))
        assert len(that_day) == PAGE + 500
        since = {"from": f"{day}T00:00:01.400+00:00", "format": "jsonl"}
        assert [e["note"] for e in _lines(admin.get(url, params=since))][:1] == ["n1400"]
        until = {"to": f"{day}T01:00:00.001+01:00", "format": "jsonl"}  # 1 ms after the first
        assert len(_lines(admin.get(url, params=until))) == 2

        today = time.strftime("%Y-%m-%d", time.gmtime())
        as_csv = admin.get(url, params={"format": "csv", "from": today})
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert "attachment" in as_csv.headers["content-disposition"]
        (row,) = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert (row["kind"], row["amount_micros"], row["note"]) == (
            "credit",
            "1000000000",
            "test funds",
        )


def test_the_usage_export_lists_every_settled_request(gateway: Gateway) -> None:
    team_id = _team(gateway)
    secret, key = gateway.new_key(team_id=team_id)
    with gateway.client(secret) as client:
        done = [run(client, KONTEXT, valid_body(KONTEXT)) for _ in range(2)]
    request_ids = sorted(r.headers["x-fal-request-id"] for r in done)
    with gateway.admin() as admin:
        _settled(admin, team_id)
        rows = _lines(
            admin.get("/admin/v1/usage/export", params={"team_id": team_id, "format": "jsonl"})
        )
        assert sorted(r["request_id"] for r in rows) == request_ids
        assert {(r["team_id"], r["key_id"], r["endpoint"]) for r in rows} == {
            (team_id, key["id"], KONTEXT)
        }
        assert all(r["images"] == 1 and r["cost_micros"] > 0 for r in rows)
        everyone = admin.get("/admin/v1/usage/export")
        assert everyone.status_code == 200
        mine = [r for r in csv.DictReader(io.StringIO(everyone.text)) if r["team_id"] == team_id]
        assert sorted(r["request_id"] for r in mine) == request_ids
        before = {"team_id": team_id, "from": "2001-01-01", "to": "2001-01-02"}
        assert len(admin.get("/admin/v1/usage/export", params=before).text.splitlines()) == 1


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "yesterday"}, ["query", "from"]),
        ({"to": "2024-13-01"}, ["query", "to"]),
        ({"from": "2024-01-02T03:04:05"}, ["query", "from"]),  # no offset
        ({"from": "2024-02-01", "to": "2024-01-31"}, ["query"]),
        ({"format": "xml"}, ["query", "format"]),
    ],
)
def test_bad_export_queries_are_422(
    gateway: Gateway, params: dict[str, str], loc: list[str]
) -> None:
    team_id = _team(gateway)
    with gateway.admin() as admin:
        for url in (f"/admin/v1/teams/{team_id}/ledger/export", "/admin/v1/usage/export"):
            response = admin.get(url, params=params)
            assert response.status_code == 422, response.text
            (item,) = response.json()["detail"]
            assert item["loc"] == loc


def test_exports_need_a_known_team_and_the_admin_token(gateway: Gateway) -> None:
    with gateway.admin() as admin:
        assert admin.get("/admin/v1/teams/no-such-team/ledger/export").status_code == 404
        missing = admin.get("/admin/v1/usage/export", params={"team_id": "no-such-team"})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Team not found", "error_type": "not_found"}
    with gateway.client(None) as anyone:
        assert anyone.get("/admin/v1/usage/export").status_code == 401


def test_exports_from_the_cli(gateway: Gateway, tmp_path: Path) -> None:
    team_id = _team(gateway)
    out = tmp_path / "ledger.jsonl"
    written = gateway.cli(
        "teams", "export-ledger", team_id, "--format", "jsonl", "--output", str(out)
    )
    assert written.returncode == 0, written.stderr
    (entry,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (entry["kind"], entry["note"]) == ("credit", "test funds")

    printed = gateway.cli("usage", "export", "--team", team_id, "--from", "2020-01-01")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.splitlines()[0].startswith("id,at,team_id,request_id")

    wrong = gateway.cli("usage", "export", "--from", "2024-02-01", "--to", "2024-01-01")
    assert wrong.returncode == 1
    assert "422" in wrong.stderr
    unknown = gateway.cli("teams", "export-ledger", "no-such-team")
    assert unknown.returncode == 1
    assert "Team not found" in unknown.stderr
