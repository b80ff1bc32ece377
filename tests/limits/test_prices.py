"""Prices at run time across processes: two gateway processes on a Redis of their own (one node,
then a 3-primary cluster); a price changed through one is what the other estimates, reserves and
charges at its very next submit, and each job's usage record names the version that charged it.

Each test changes the price of an endpoint no other test here changes (or only schedules prices
far ahead), as they share the Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.jobs import (
    GENERAL_INPAINTING,
    IMAGE_TO_IMAGE,
    INPAINTING,
    KONTEXT,
    submit,
    valid_body,
    wait_status,
)
from tests.limits.conftest import client_for, new_team, settled_when, team_state
from tests.servers import Emulator, Gateway

pytestmark = pytest.mark.on_cluster

PIXELS = 64 * 48
"""What ``valid_body`` asks for (and the emulator produces): one 64x48 image."""
CATALOG_COST = 108
"""ceil(3072 px x 35,000 micro-units per megapixel / 10^6)."""
NEW = {"per_megapixel_micros": 50_000, "per_image_micros": 100, "per_request_micros": 1_000}
NEW_COST = 1_000 + 154 + 100
"""Per request, ceil(3072 x 50,000 / 10^6) and per image."""


@pytest.fixture(scope="module")
def pair(private_redis_url: str, fast_emulator: Emulator) -> Iterator[tuple[Gateway, Gateway]]:
    with (
        Gateway(private_redis_url, fast_emulator.url) as one,
        Gateway(private_redis_url, fast_emulator.url) as other,
    ):
        yield one, other


def _set_price(gateway: Gateway, endpoint: str, **fields: Any) -> dict[str, Any]:
    with gateway.admin() as admin:
        response = admin.post("/admin/v1/prices", json={"endpoint": endpoint, **fields})
    assert response.status_code == 201, response.text
    entry: dict[str, Any] = response.json()
    return entry


def _costs(response: httpx.Response) -> tuple[int, int]:
    assert response.status_code == 200, response.text
    headers = response.headers
    return (
        int(headers["x-gateway-estimated-cost-micros"]),
        int(headers["x-gateway-reserved-micros"]),
    )


def _usage_log(gateway: Gateway, team: str) -> dict[str, dict[str, Any]]:
    """The team's usage records by request id."""
    with gateway.admin() as admin:
        response = admin.get("/admin/v1/usage/export", params={"team_id": team, "format": "jsonl"})
    assert response.status_code == 200, response.text
    rows = [json.loads(line) for line in response.text.splitlines()]
    return {row["request_id"]: row for row in rows}


def _settled(gateway: Gateway, team: str) -> None:
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)


def test_a_price_change_applies_to_the_next_submit_on_every_replica(
    pair: tuple[Gateway, Gateway],
) -> None:
    changed_through, other = pair
    team = new_team(changed_through, Gateway.FUNDS)
    body = valid_body(IMAGE_TO_IMAGE)
    with client_for(other, team) as client:
        before = client.post(f"/{IMAGE_TO_IMAGE}", json=body)  # the other caches the table
        assert _costs(before) == (CATALOG_COST, CATALOG_COST)

        entry = _set_price(changed_through, IMAGE_TO_IMAGE, **NEW, note="fal's new price")
        after = client.post(f"/{IMAGE_TO_IMAGE}", json=body)
        assert _costs(after) == (NEW_COST, NEW_COST)
        for response in (before, after):
            wait_status(client, response.json()["status_url"])
            assert client.get(response.json()["response_url"]).status_code == 200
    _settled(other, team)
    assert team_state(other, team)["balance_micros"] == Gateway.FUNDS - CATALOG_COST - NEW_COST
    records = _usage_log(other, team)
    charged = records[before.json()["request_id"]], records[after.json()["request_id"]]
    assert [(r["price_version"], r["cost_micros"]) for r in charged] == [
        (0, CATALOG_COST),
        (entry["version"], NEW_COST),
    ]
    with changed_through.admin() as admin:
        shown = admin.get(f"/admin/v1/prices/{entry['version']}").json()
    assert shown == {**entry, "state": "current"}
    assert {"note": "fal's new price", "endpoint": IMAGE_TO_IMAGE, **NEW}.items() <= shown.items()


def test_a_job_is_charged_at_the_price_it_was_admitted_at(
    pair: tuple[Gateway, Gateway], fast_emulator: Emulator
) -> None:
    one, other = pair
    team = new_team(one, Gateway.FUNDS)
    admitted_at = _set_price(one, KONTEXT, **NEW)
    with fast_emulator.client() as control:
        control.patch("/_emulator/knobs", json={"run_time": 1.5}).raise_for_status()
    try:
        with client_for(other, team) as client:
            job = submit(client, KONTEXT, valid_body(KONTEXT))
            _set_price(one, KONTEXT, per_megapixel_micros=1_000)  # cheaper, while it runs
            status = client.get(job["status_url"]).json()["status"]
            wait_status(client, job["status_url"])
            assert client.get(job["response_url"]).status_code == 200
    finally:
        with fast_emulator.client() as control:
            control.patch("/_emulator/knobs", json={"run_time": 0.05}).raise_for_status()
    assert status in ("IN_QUEUE", "IN_PROGRESS")  # the change came before the end
    _settled(one, team)
    assert team_state(one, team)["balance_micros"] == Gateway.FUNDS - NEW_COST
    record = _usage_log(one, team)[job["request_id"]]
    assert (record["price_version"], record["cost_micros"]) == (admitted_at["version"], NEW_COST)


def test_a_scheduled_price_applies_from_its_time(pair: tuple[Gateway, Gateway]) -> None:
    one, other = pair
    team = new_team(one, Gateway.FUNDS)
    at = datetime.now(UTC) + timedelta(seconds=2)
    entry = _set_price(one, INPAINTING, **NEW, effective_at=at.isoformat())
    assert entry["state"] == "scheduled"
    with client_for(other, team) as client:
        assert _costs(client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))) == (
            CATALOG_COST,
            CATALOG_COST,
        )
        with one.admin() as admin:
            [listed] = [
                e
                for e in admin.get("/admin/v1/prices").json()["endpoints"]
                if e["endpoint"] == INPAINTING
            ]
        assert listed["current"]["version"] == 0
        assert [e["version"] for e in listed["scheduled"]] == [entry["version"]]
        time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.1)
        after = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
        assert _costs(after) == (NEW_COST, NEW_COST)
    with other.admin() as admin:
        assert admin.get(f"/admin/v1/prices/{entry['version']}").json()["state"] == "current"
        cancelled = admin.delete(f"/admin/v1/prices/{entry['version']}")
    assert (cancelled.status_code, cancelled.json()["error_type"]) == (409, "conflict")


def test_a_teams_own_price_applies_on_every_replica_under_its_multiplier(
    pair: tuple[Gateway, Gateway],
) -> None:
    one, other = pair
    own_team = new_team(one, Gateway.FUNDS, price_multiplier="2")
    plain_team = new_team(one, Gateway.FUNDS, price_multiplier="2")
    body = valid_body(GENERAL_INPAINTING)
    path = f"/{GENERAL_INPAINTING}"
    with client_for(other, own_team) as own, client_for(other, plain_team) as plain:
        table_cost, _ = _costs(plain.post(path, json=body))
        assert _costs(own.post(path, json=body)) == (table_cost, 2 * table_cost)

        with one.admin() as admin:
            response = admin.put(
                f"/admin/v1/teams/{own_team}/prices/{GENERAL_INPAINTING}", json=NEW
            )
        assert response.status_code == 200, response.text
        [shown] = [p for p in response.json()["prices"] if p["endpoint"] == GENERAL_INPAINTING]
        assert {"source": "team", **NEW}.items() <= shown.items()
        assert _costs(own.post(path, json=body)) == (NEW_COST, 2 * NEW_COST)
        assert _costs(plain.post(path, json=body)) == (table_cost, 2 * table_cost)

        with one.admin() as admin:
            admin.delete(f"/admin/v1/teams/{own_team}/prices/{GENERAL_INPAINTING}")
        assert _costs(own.post(path, json=body)) == (table_cost, 2 * table_cost)


FUTURE = (datetime.now(UTC) + timedelta(days=365)).isoformat()
INVALID_PRICES: dict[str, Any] = {
    "unknown endpoint": {"endpoint": "fal-ai/flux-pro", "per_megapixel_micros": 1},
    "no price": {"endpoint": KONTEXT},
    "negative": {"endpoint": KONTEXT, "per_megapixel_micros": -1},
    "too large": {"endpoint": KONTEXT, "per_megapixel_micros": 100_000_001},
    "fraction": {"endpoint": KONTEXT, "per_megapixel_micros": 1.5},
    "text": {"endpoint": KONTEXT, "per_megapixel_micros": "1", "per_image_micros": "x"},
    "in the past": {
        "endpoint": KONTEXT,
        "per_megapixel_micros": 1,
        "effective_at": "2020-01-01T00:00:00Z",
    },
    "no offset": {"endpoint": KONTEXT, "per_megapixel_micros": 1, "effective_at": FUTURE[:19]},
    "unknown field": {"endpoint": KONTEXT, "per_megapixel_micros": 1, "per_second": 2},
    "not an object": [1],
}


@pytest.mark.parametrize("name", sorted(INVALID_PRICES))
def test_an_invalid_price_is_refused_in_fals_shape_and_nothing_stored(
    pair: tuple[Gateway, Gateway], name: str
) -> None:
    with pair[0].admin() as admin:
        before = admin.get("/admin/v1/prices").json()
        response = admin.post("/admin/v1/prices", json=INVALID_PRICES[name])
        after = admin.get("/admin/v1/prices").json()
    assert response.status_code == 422, response.text
    [*_, item] = response.json()["detail"]
    assert {"loc", "msg", "type"} <= item.keys()
    assert after == before


def test_an_invalid_team_price_is_refused_and_nothing_stored(pair: tuple[Gateway, Gateway]) -> None:
    gateway = pair[0]
    team = new_team(gateway, 0)
    with gateway.admin() as admin:
        bad_terms = admin.put(
            f"/admin/v1/teams/{team}/prices/{KONTEXT}", json={"per_megapixel_micros": -5}
        )
        no_endpoint = admin.put(
            f"/admin/v1/teams/{team}/prices/fal-ai/flux-pro", json={"per_megapixel_micros": 5}
        )
        no_team = admin.put(
            f"/admin/v1/teams/no-such-team/prices/{KONTEXT}", json={"per_megapixel_micros": 5}
        )
        shown = admin.get(f"/admin/v1/teams/{team}").json()
    assert bad_terms.status_code == 422, bad_terms.text
    assert bad_terms.json()["detail"][0]["loc"] == ["body", "per_megapixel_micros"]
    assert (no_endpoint.status_code, no_endpoint.json()["detail"]) == (404, "Endpoint not served")
    assert (no_team.status_code, no_team.json()["detail"]) == (404, "Team not found")
    assert shown["prices"] == {}


def test_prices_from_the_cli(pair: tuple[Gateway, Gateway]) -> None:
    gateway = pair[1]
    scheduled = gateway.cli(
        "prices", "set", KONTEXT, "--per-megapixel-micros", "40000", "--at", FUTURE, "--json"
    )
    assert scheduled.returncode == 0, scheduled.stderr
    entry = json.loads(scheduled.stdout)
    assert (entry["state"], entry["per_megapixel_micros"]) == ("scheduled", 40_000)
    listed = gateway.cli("prices", "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [
        line for line in listed.stdout.splitlines() if line.split()[1] == str(entry["version"])
    ]
    assert (row.split()[0], row.split()[-1]) == (KONTEXT, "scheduled")
    assert gateway.cli("prices", "cancel", str(entry["version"])).returncode == 0
    missing = gateway.cli("prices", "show", str(entry["version"]))
    assert (missing.returncode, "404: Price not found" in missing.stderr) == (1, True)

    team = new_team(gateway, 0)
    own = gateway.cli("teams", "price", team, KONTEXT, "--per-megapixel-micros", "7")
    assert own.returncode == 0, own.stderr
    [cells] = [line.split() for line in own.stdout.splitlines() if line.startswith(KONTEXT)]
    assert (cells[1], cells[3]) == ("team", "7")  # source, per megapixel
    cleared = gateway.cli("teams", "price", team, KONTEXT, "--clear", "--json")
    [shown] = [p for p in json.loads(cleared.stdout)["prices"] if p["endpoint"] == KONTEXT]
    assert shown["source"] != "team"
