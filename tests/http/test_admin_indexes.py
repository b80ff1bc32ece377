"""The team and key indexes through the admin API and the CLI: an entry a crash left without a
record is no team or key, ``maintenance repair-indexes`` drops it (but not a creation in
progress) and gives back what the index missed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from gateway.store import redis_keys
from tests.cluster_servers import RedisClusterServers
from tests.conftest import CLUSTER
from tests.servers import Gateway, RedisServer

pytestmark = pytest.mark.on_cluster

REPAIR = "/admin/v1/maintenance/repair-indexes"
LONG_AGO = time.time() - 86_400


@pytest.fixture
def store(redis_topology: str, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """A client of the gateway's Redis (either topology), to write what a crash leaves."""
    if redis_topology == CLUSTER:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        client: redis.Redis = cluster.client()  # type: ignore[assignment]
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.Redis.from_url(server.url, decode_responses=True)
    with client:
        yield client


def _repair(gateway: Gateway, **body: Any) -> dict[str, Any]:
    with gateway.admin() as admin:
        response = admin.post(REPAIR, json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_entries_a_crash_left_are_nothing_and_dropped_by_repair(
    gateway: Gateway, store: redis.Redis
) -> None:
    """What a creation dying after its first write leaves: no team, no key, the callers' keys
    unaffected; repair drops both entries."""
    token, _ = gateway.new_key()
    team_id, key_id = f"ix-{os.urandom(5).hex()}", os.urandom(6).hex()
    store.sadd(redis_keys.TEAM_INDEX, team_id)
    store.zadd(redis_keys.TEAM_INDEX_PENDING, {team_id: LONG_AGO})
    store.hset(redis_keys.KEY_INDEX, key_id, team_id)
    store.zadd(redis_keys.KEY_INDEX_PENDING, {key_id: LONG_AGO})
    with gateway.admin() as admin, gateway.client(token) as caller:
        assert admin.get(f"/admin/v1/teams/{team_id}").status_code == 404
        assert team_id not in [t["id"] for t in admin.get("/admin/v1/teams").json()["teams"]]
        assert admin.get(f"/admin/v1/keys/{key_id}").status_code == 404
        assert admin.post(f"/admin/v1/keys/{key_id}/revoke").status_code == 404
        assert key_id not in [k["id"] for k in admin.get("/admin/v1/keys").json()["keys"]]
        assert admin.get("/admin/v1/usage").status_code == 200
        assert caller.get("/v1/me").status_code == 200

    repaired = _repair(gateway)

    assert team_id in repaired["teams"]["dropped"]
    assert key_id in repaired["keys"]["dropped"]
    assert not store.sismember(redis_keys.TEAM_INDEX, team_id)
    assert not store.hexists(redis_keys.KEY_INDEX, key_id)
    assert store.zscore(redis_keys.KEY_INDEX_PENDING, key_id) is None


def test_a_key_the_index_missed_is_found_and_revocable_after_repair(
    gateway: Gateway, store: redis.Redis
) -> None:
    """A crash of the old write order (record, then index) left a key that authenticates but
    that the admin API cannot find: ``fal-gateway maintenance repair-indexes`` gives it back."""
    token, key = gateway.new_key(name="unlisted")
    key_id = str(key["id"])
    store.hdel(redis_keys.KEY_INDEX, key_id)
    with gateway.admin() as admin, gateway.client(token) as caller:
        assert admin.post(f"/admin/v1/keys/{key_id}/revoke").status_code == 404
        assert caller.get("/v1/me").status_code == 200

        done = gateway.cli("maintenance", "repair-indexes")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].split() == ["INDEX", "DROPPED", "RESTORED"]
        assert key_id in done.stdout

        assert admin.get(f"/admin/v1/keys/{key_id}").json()["name"] == "unlisted"
        revoked = admin.post(f"/admin/v1/keys/{key_id}/revoke")
        assert revoked.json()["status"] == "revoked", revoked.text
        assert caller.get("/v1/me").status_code == 401


def test_repair_keeps_the_entry_of_a_creation_in_progress(
    gateway: Gateway, store: redis.Redis
) -> None:
    team_id, key_id = f"ix-{os.urandom(5).hex()}", os.urandom(6).hex()
    store.sadd(redis_keys.TEAM_INDEX, team_id)
    store.zadd(redis_keys.TEAM_INDEX_PENDING, {team_id: time.time()})
    store.hset(redis_keys.KEY_INDEX, key_id, team_id)
    store.zadd(redis_keys.KEY_INDEX_PENDING, {key_id: time.time()})

    repaired = _repair(gateway, grace_seconds=60)

    assert team_id not in repaired["teams"]["dropped"]
    assert key_id not in repaired["keys"]["dropped"]
    assert store.sismember(redis_keys.TEAM_INDEX, team_id)
    assert store.hexists(redis_keys.KEY_INDEX, key_id)
    gateway.ensure_team(team_id)  # the creation finishes
    with gateway.admin() as admin:
        assert team_id in [t["id"] for t in admin.get("/admin/v1/teams").json()["teams"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"grace_seconds": 59}, ["body", "grace_seconds"]),
        ({"grace_seconds": "soon"}, ["body", "grace_seconds"]),
        ({"grace_seconds": 10**12}, ["body", "grace_seconds"]),
        ({"grace": 600}, ["body", "grace"]),
        ([600], ["body"]),
    ],
)
def test_repair_refuses_bad_input(gateway: Gateway, body: Any, loc: list[str]) -> None:
    with gateway.admin() as admin:
        response = admin.post(REPAIR, json=body)
    assert response.status_code == 422, response.text
    assert loc in [item["loc"] for item in response.json()["detail"]], response.text
    with gateway.admin() as admin:
        assert admin.post(REPAIR, headers={"Authorization": "Bearer wrong"}).status_code == 401
