"""The team and key indexes driven directly against a real Redis: what a crash between the
writes of a creation leaves, how readers see an entry without a record, and ``repair``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from gateway.accounts import indexes
from gateway.accounts.keys import KeyStore
from gateway.accounts.teams import TeamStore
from gateway.policy.limits import TeamLimits
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.pool import connect_redis
from tests.cluster_servers import RedisClusterServers
from tests.conftest import CLUSTER
from tests.servers import RedisServer

GRACE = 600
INDEX_KEYS = ("~" + redis_keys.KEY_INDEX, "~{" + redis_keys.KEY_INDEX + "}:*")
TEAM_INDEX_KEYS = ("~" + redis_keys.TEAM_INDEX, "~{" + redis_keys.TEAM_INDEX + "}:*")


pytestmark = pytest.mark.on_cluster


def connect(url: str) -> Redis:
    """The gateway's control-plane client for ``url`` (redis-py's cluster client on a cluster)."""
    return connect_redis(Settings(redis_url=url, redis_pool_size=10, redis_timeout=5))


def run(redis_url: str, body: Callable[[Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        async with connect(redis_url) as store:
            await body(store)

    asyncio.run(main())


@pytest.fixture
def nodes(redis_topology: str, request: pytest.FixtureRequest) -> list[RedisServer]:
    """Every server of the topology (ACL users are per server)."""
    if redis_topology == CLUSTER:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        return cluster.live()
    server: RedisServer = request.getfixturevalue("redis_server")
    return [server]


def new_team() -> str:
    return f"ix-{os.urandom(5).hex()}"


def crashing_at(nodes: list[RedisServer], url: str, *patterns: str) -> Redis:
    """A client whose first command on a key not matching ``patterns`` fails: a process that
    dies there, its earlier writes done."""
    user = f"crash-{os.urandom(4).hex()}"
    for node in nodes:
        with redis.Redis(port=node.port) as admin:
            admin.acl_setuser(
                user, enabled=True, passwords=[f"+{user}"], keys=list(patterns), commands=["+@all"]
            )
    scheme, _, rest = url.partition("://")
    return connect(f"{scheme}://{user}:{user}@{rest}")


async def key_records(store: Redis, team_id: str) -> set[str]:
    found = store.scan_iter(match=redis_keys.key_record(team_id, "*"), count=1000)
    return {str(name).rsplit(":", 1)[1] async for name in found}


async def indexed_keys(store: Redis, team_id: str) -> set[str]:
    entries = await store.hgetall(redis_keys.KEY_INDEX)
    return {str(k) for k, t in entries.items() if t == team_id}


@pytest.mark.parametrize(
    ("writable", "left"),
    [(INDEX_KEYS, 1), (("~" + redis_keys.key_record("*", "*"),), 0)],
    ids=["index", "record"],
)
def test_a_key_creation_that_dies_leaves_no_key_the_admin_api_misses(
    redis_url: str, nodes: list[RedisServer], writable: tuple[str, ...], left: int
) -> None:
    """Whichever write a creation dies at, every key record is in the index (an unlisted key
    would authenticate, its token naming its team, yet could not be found or revoked): the entry
    is written first, and an entry without a record is no key."""

    async def body(store: Redis) -> None:
        team_id = new_team()
        async with crashing_at(nodes, redis_url, *writable) as dying:
            with pytest.raises(NoPermissionError):
                await KeyStore(dying).create("doomed", team_id)
        records, entries = await key_records(store, team_id), await indexed_keys(store, team_id)
        assert (len(records), len(entries)) == (0, left)
        keys = KeyStore(store)
        assert [await keys.get(key_id) for key_id in entries] == [None] * len(entries)
        assert [k for k in await keys.all() if k.team_id == team_id] == []

    run(redis_url, body)


@pytest.mark.parametrize(
    ("writable", "left"),
    [(TEAM_INDEX_KEYS, True), (("~" + redis_keys.team_record("*"),), False)],
    ids=["index", "record"],
)
def test_a_team_creation_that_dies_leaves_no_team_the_index_misses(
    redis_url: str, nodes: list[RedisServer], writable: tuple[str, ...], left: bool
) -> None:
    """A team missing from the index would never be listed nor audited by the reconciler."""

    async def body(store: Redis) -> None:
        team_id = new_team()
        async with crashing_at(nodes, redis_url, *writable) as dying:
            with pytest.raises(NoPermissionError):
                await TeamStore(dying).create(team_id, team_id, TeamLimits())
        teams = TeamStore(store)
        assert not await store.exists(redis_keys.team_record(team_id))
        assert await store.sismember(redis_keys.TEAM_INDEX, team_id) == left
        assert await teams.get(team_id) is None
        assert team_id not in [t.id for t in await teams.all()]
        assert team_id not in await teams.ids()

    run(redis_url, body)


def test_repair_drops_entries_a_crash_left_but_not_a_creation_in_progress(redis_url: str) -> None:
    async def body(store: Redis) -> None:
        crashed, legacy, in_progress = new_team(), new_team(), new_team()
        long_ago = time.time() - 2 * GRACE
        await store.sadd(redis_keys.TEAM_INDEX, crashed, legacy)
        await store.zadd(redis_keys.TEAM_INDEX_PENDING, {crashed: long_ago})
        await indexes.begin(store, indexes.TEAMS, in_progress, in_progress)
        await store.hset(redis_keys.KEY_INDEX, mapping={"crashedkey01": crashed})
        await store.zadd(redis_keys.KEY_INDEX_PENDING, {"crashedkey01": long_ago})
        await indexes.begin(store, indexes.KEYS, "startedkey01", in_progress)
        teams, keys = TeamStore(store), KeyStore(store)
        assert not {crashed, legacy, in_progress} & {*await teams.ids()}
        assert await keys.get("crashedkey01") is None

        repaired = await indexes.repair_all(store, GRACE)

        assert {crashed, legacy} <= {*repaired["teams"].dropped}
        assert in_progress not in repaired["teams"].dropped
        assert "crashedkey01" in repaired["keys"].dropped
        assert "startedkey01" not in repaired["keys"].dropped
        assert await store.smismember(redis_keys.TEAM_INDEX, [crashed, legacy, in_progress]) == [
            0,
            0,
            1,
        ]
        assert not await store.hexists(redis_keys.KEY_INDEX, "crashedkey01")
        assert await store.hexists(redis_keys.KEY_INDEX, "startedkey01")
        assert await store.zscore(redis_keys.TEAM_INDEX_PENDING, crashed) is None
        assert await store.zscore(redis_keys.TEAM_INDEX_PENDING, in_progress) is not None

        assert await teams.create(in_progress, "finished", TeamLimits()) is not None
        assert in_progress in await teams.ids()
        assert await store.zscore(redis_keys.TEAM_INDEX_PENDING, in_progress) is None

    run(redis_url, body)


def test_repair_restores_records_the_index_misses(redis_url: str) -> None:
    """What the old write order (record first) left after a crash: found and revocable again.
    Eight teams, so that on the cluster their records sit on several primaries (all on one:
    3 in 3^8), each of which ``repair`` scans."""

    async def body(store: Redis) -> None:
        team_ids = sorted(new_team() for _ in range(8))
        teams, keys = TeamStore(store), KeyStore(store)
        lost = []
        for team_id in team_ids:
            await teams.create(team_id, "lost", TeamLimits())
            lost.append((await keys.create("lost", team_id))[0].id)
        await store.srem(redis_keys.TEAM_INDEX, *team_ids)
        await store.hdel(redis_keys.KEY_INDEX, *lost)
        assert [await keys.get(key_id) for key_id in lost] == [None] * len(lost)
        assert not set(team_ids) & {*await teams.ids()}

        repaired = await indexes.repair_all(store, GRACE)

        assert set(team_ids) <= {*repaired["teams"].restored}
        assert set(lost) <= {*repaired["keys"].restored}
        assert set(team_ids) <= {*await teams.ids()}
        revoked = await keys.revoke(lost[0])
        assert revoked is not None
        assert revoked.status == "revoked"
        again = await indexes.repair_all(store, GRACE)
        assert not set(team_ids) & {*again["teams"].restored}
        assert not set(lost) & {*again["keys"].restored}

    run(redis_url, body)
