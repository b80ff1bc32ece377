"""The admin API refuses out-of-range and malformed input with fal's 422, stores none of it, and
still reads what earlier versions let through."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import redis

from gateway.policy.limits import MAX_MICROS
from gateway.store import redis_keys
from tests.servers import Gateway, RedisServer

NESTED = b"[" * 5000 + b"]" * 5000


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _team_and_key(gateway: Gateway) -> tuple[str, str, str]:
    """A new funded team, and one key of it: the team id, the key id and its token."""
    team_id = f"in-{os.urandom(5).hex()}"
    token, key = gateway.new_key(team_id=team_id)
    return team_id, str(key["id"]), token


def _readable(gateway: Gateway, team_id: str, token: str) -> dict[str, Any]:
    """The team as listed, once listings and ``/v1/me`` are seen to answer 200."""
    with gateway.admin() as admin, gateway.client(token) as caller:
        teams = admin.get("/admin/v1/teams")
        assert teams.status_code == 200, teams.text
        assert admin.get("/admin/v1/keys").status_code == 200
        assert admin.get(f"/admin/v1/teams/{team_id}").status_code == 200
        me = caller.get("/v1/me")
        assert me.status_code == 200, me.text
    listed: dict[str, Any] = next(t for t in teams.json()["teams"] if t["id"] == team_id)
    return listed


def _refused(response: Any, loc: list[str]) -> None:
    assert response.status_code == 422, response.text
    assert loc in [item["loc"] for item in response.json()["detail"]], response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("daily_cap_micros", 2**64),
        ("monthly_cap_micros", MAX_MICROS + 1),
        ("rate_per_minute", 2**63 - 1),
        ("rate_burst", 10**9),
        ("price_multiplier", "1e30"),
        ("price_multiplier", "Infinity"),
        ("low_balance_micros", -1),
        ("low_balance_micros", MAX_MICROS + 1),
        ("near_cap_percent", 0),
        ("near_cap_percent", 101),
    ],
)
def test_out_of_range_team_limits_are_422_and_not_stored(
    gateway: Gateway, field: str, value: object
) -> None:
    team_id, _, token = _team_and_key(gateway)
    before = _readable(gateway, team_id, token)
    with gateway.admin() as admin:
        _refused(admin.patch(f"/admin/v1/teams/{team_id}", json={field: value}), ["body", field])
        created = admin.post(
            "/admin/v1/teams", json={"id": f"{team_id}-2", "name": "x", field: value}
        )
        _refused(created, ["body", field])
        assert admin.get(f"/admin/v1/teams/{team_id}-2").status_code == 404
    assert _readable(gateway, team_id, token) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spend_cap_micros", 2**64),
        ("rate_per_minute", 2**63 - 1),
        ("max_concurrent", 2**31),
        ("upload_quota_bytes", 2**63),
    ],
)
def test_out_of_range_key_limits_are_422_and_not_stored(
    gateway: Gateway, field: str, value: object
) -> None:
    team_id, key_id, token = _team_and_key(gateway)
    with gateway.admin() as admin:
        before = admin.get(f"/admin/v1/keys/{key_id}").json()
        _refused(admin.patch(f"/admin/v1/keys/{key_id}", json={field: value}), ["body", field])
        created = admin.post("/admin/v1/keys", json={"name": "x", "team_id": team_id, field: value})
        _refused(created, ["body", field])
        assert admin.get(f"/admin/v1/keys/{key_id}").json() == before
    _readable(gateway, team_id, token)


@pytest.mark.parametrize(
    "policy",
    [
        {"max_num_images": 2**70},
        {"max_loras": 2**64},
        {"max_megapixels": 1e308},
        {"defaults": {"num_images": 2**70}},
        {"defaults": {"image_size": {"width": 10**6, "height": 8}}},
        {"defaults": {"loras": _nested(300)}},
    ],
)
def test_out_of_range_policies_are_422_and_not_stored(
    gateway: Gateway, policy: dict[str, Any]
) -> None:
    team_id, key_id, token = _team_and_key(gateway)
    (field,) = policy
    # Python's encoder writes 2**70 exactly, as a hostile client would.
    body = json.dumps(policy)
    with gateway.admin() as admin:
        for path in (f"/admin/v1/keys/{key_id}/policy", f"/admin/v1/teams/{team_id}/policy"):
            _refused(admin.put(path, content=body), ["body", field])
        assert admin.get(f"/admin/v1/keys/{key_id}").json()["policy"] == {}
    assert _readable(gateway, team_id, token)["policy"] == {}


@pytest.mark.parametrize("amount", [2**63, 2**63 - 1, -(2**63), MAX_MICROS + 1])
def test_credit_past_the_maximum_is_422_and_not_stored(gateway: Gateway, amount: int) -> None:
    team_id, _, token = _team_and_key(gateway)
    before = _readable(gateway, team_id, token)
    with gateway.admin() as admin:
        response = admin.post(
            f"/admin/v1/teams/{team_id}/credits", content=json.dumps({"amount_micros": amount})
        )
        _refused(response, ["body", "amount_micros"])
        assert len(admin.get(f"/admin/v1/teams/{team_id}/ledger").json()["entries"]) == 1
    assert _readable(gateway, team_id, token) == before


def test_credit_that_would_take_the_balance_past_the_maximum_is_422(gateway: Gateway) -> None:
    team_id, _, token = _team_and_key(gateway)
    balance = _readable(gateway, team_id, token)["balance_micros"]
    credits = f"/admin/v1/teams/{team_id}/credits"
    with gateway.admin() as admin:
        to_max = admin.post(credits, json={"amount_micros": MAX_MICROS - balance})
        assert to_max.json()["balance_micros"] == MAX_MICROS
        _refused(admin.post(credits, json={"amount_micros": 1}), ["body", "amount_micros"])
        down = admin.post(credits, json={"amount_micros": -MAX_MICROS})
        assert down.json()["balance_micros"] == 0
        to_min = admin.post(credits, json={"amount_micros": -MAX_MICROS})
        assert to_min.json()["balance_micros"] == -MAX_MICROS
        _refused(admin.post(credits, json={"amount_micros": -1}), ["body", "amount_micros"])
    assert _readable(gateway, team_id, token)["balance_micros"] == -MAX_MICROS


@pytest.mark.parametrize("limit", ["0", "-1", "10001", "99999999999999999999999", "x", ""])
def test_ledger_limit_out_of_range_is_422(gateway: Gateway, limit: str) -> None:
    team_id, _, _ = _team_and_key(gateway)
    with gateway.admin() as admin:
        response = admin.get(f"/admin/v1/teams/{team_id}/ledger", params={"limit": limit})
        _refused(response, ["query", "limit"])
        assert admin.get(f"/admin/v1/teams/{team_id}/ledger", params={"limit": 1}).is_success


def test_expiry_past_year_9999_is_422(gateway: Gateway) -> None:
    team_id, _, token = _team_and_key(gateway)
    with gateway.admin() as admin:
        before = len(admin.get("/admin/v1/keys").json()["keys"])
        response = admin.post(
            "/admin/v1/keys",
            json={"name": "x", "team_id": team_id, "expires_at": "9999-12-31T23:59:59-14:00"},
        )
        _refused(response, ["body", "expires_at"])
        assert len(admin.get("/admin/v1/keys").json()["keys"]) == before
    _readable(gateway, team_id, token)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/v1/teams"),
        ("PATCH", "/admin/v1/teams/{team}"),
        ("PUT", "/admin/v1/teams/{team}/policy"),
        ("POST", "/admin/v1/teams/{team}/credits"),
        ("POST", "/admin/v1/keys"),
        ("PATCH", "/admin/v1/keys/{key}"),
        ("PUT", "/admin/v1/keys/{key}/policy"),
    ],
)
@pytest.mark.parametrize("raw", [NESTED, b'{"name": "\\ud800"}', b'{"name": NaN}'])
def test_bodies_that_are_not_strict_json_are_422(
    gateway: Gateway, method: str, path: str, raw: bytes
) -> None:
    team_id, key_id, token = _team_and_key(gateway)
    with gateway.admin() as admin:
        response = admin.request(method, path.format(team=team_id, key=key_id), content=raw)
        _refused(response, ["body"])
        assert response.json()["detail"][0]["type"] == "json_invalid"
    _readable(gateway, team_id, token)


def test_values_stored_before_the_bounds_still_read(
    gateway: Gateway, redis_server: RedisServer
) -> None:
    """What earlier versions let through reads as no limit, or the last representable time."""
    team_id, key_id, token = _team_and_key(gateway)
    policy = {"max_num_images": 2**70, "max_loras": 2, "defaults": {"seed": _nested(199)}}
    with redis.Redis.from_url(redis_server.url) as store:
        store.hset(
            redis_keys.team_record(team_id),
            mapping={"daily_cap": str(2**64), "rate_per_minute": str(2**63 - 1)},
        )
        store.hset(
            redis_keys.key_record(team_id, key_id),
            mapping={
                "spend_cap": str(10**30),
                "expires_at": repr(253402351199.0),
                "policy": json.dumps(policy),
            },
        )
    team = _readable(gateway, team_id, token)
    assert team["limits"]["daily_cap_micros"] is None
    assert team["limits"]["rate_per_minute"] == 2**63 - 1
    with gateway.admin() as admin:
        key = admin.get(f"/admin/v1/keys/{key_id}").json()
    assert key["limits"]["spend_cap_micros"] is None
    assert key["expires_at"] == "9999-12-31T23:59:59Z"
    assert key["policy"] == {"max_loras": 2}
