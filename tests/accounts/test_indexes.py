"""The team and key indexes driven directly against a real Redis: what a crash between the
writes of a creation leaves, how readers see an entry without a record, and ``repair``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from gateway.accounts import indexes
from gateway.accounts.keys import KeyStore
from gateway.accounts.teams import TeamStore
from gateway.policy.limits import TeamLimits
from gateway.store import redis_keys
from tests.servers import RedisServer

GRACE = 600
INDEX_KEYS = ("~" + redis_keys.KEY_INDEX, "~{" + redis_keys.KEY_INDEX + "}:*")
TEAM_INDEX_KEYS = ("~" + redis_keys.TEAM_INDEX, "~{" + redis_keys.TEAM_INDEX + "}:*")


def run(redis_server: RedisServer, body: Callable[[Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Redis.from_url(redis_server.url, decode_responses=True) as store:
            await body(store)

    asyncio.run(main())


def new_team() -> str:
    return f"ix-{os.urandom(5).hex()}"


async def crashing_at(store: Redis, url: str, *patterns: str) -> Redis:
    """A client whose first command on a key not matching ``patterns`` fails: a process that
    dies there, its earlier writes done."""
    user = f"crash-{os.urandom(4).hex()}"
    await store.acl_setuser(
        user, enabled=True, passwords=[f"+{user}"], keys=list(patterns), commands=["+@all"]
    )
    return Redis.from_url(url, username=user, password=user, decode_responses=True)


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
    redis_server: RedisServer, writable: tuple[str, ...], left: int
) -> None:
    """Whichever write a creation dies at, every key record is in the index (an unlisted key
    would authenticate, its token naming its team, yet could not be found or revoked): the entry
    is written first, and an entry without a record is no key."""

    async def body(store: Redis) -> None:
        team_id = new_team()
        async with await crashing_at(store, redis_server.url, *writable) as dying:
            with pytest.raises(NoPermissionError):
                await KeyStore(dying).create("doomed", team_id)
        records, entries = await key_records(store, team_id), await indexed_keys(store, team_id)
        assert (len(records), len(entries)) == (0, left)
        keys = KeyStore(store)
        assert [await keys.get(key_id) for key_id in entries] == [None] * len(entries)
        assert [k for k in await keys.all() if k.team_id == team_id] == []

    run(redis_server, body)


@pytest.mark.parametrize(
    ("writable", "left"),
    [(TEAM_INDEX_KEYS, True), (("~" + redis_keys.team_record("*"),), False)],
    ids=["index", "record"],
)
def test_a_team_creation_that_dies_leaves_no_team_the_index_misses(
    redis_server: RedisServer, writable: tuple[str, ...], left: bool
) -> None:
    """A team missing from the index would never be listed nor audited by the reconciler."""

    async def body(store: Redis) -> None:
        team_id = new_team()
        async with await crashing_at(store, redis_server.url, *writable) as dying:
            with pytest.raises(NoPermissionError):
                await TeamStore(dying).create(team_id, team_id, TeamLimits())
        teams = TeamStore(store)
        assert not await store.exists(redis_keys.team_record(team_id))
        assert await store.sismember(redis_keys.TEAM_INDEX, team_id) == left
        assert await teams.get(team_id) is None
        assert team_id not in [t.id for t in await teams.all()]
        assert team_id not in await teams.ids()

    run(redis_server, body)


def test_repair_drops_entries_a_crash_left_but_not_a_creation_in_progress(
    redis_server: RedisServer,
) -> None:
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

    run(redis_server, body)


def test_repair_restores_records_the_index_misses(redis_server: RedisServer) -> None:
    """What the old write order (record first) left after a crash: found and revocable again."""

    async def body(store: Redis) -> None:
        team_id = new_team()
        teams, keys = TeamStore(store), KeyStore(store)
        await teams.create(team_id, "lost", TeamLimits())
        key, _, _ = await keys.create("lost", team_id)
        await store.srem(redis_keys.TEAM_INDEX, team_id)
        await store.hdel(redis_keys.KEY_INDEX, key.id)
        assert await keys.get(key.id) is None
        assert team_id not in await teams.ids()

        repaired = await indexes.repair_all(store, GRACE)

        assert team_id in repaired["teams"].restored
        assert key.id in repaired["keys"].restored
        assert team_id in await teams.ids()
        revoked = await keys.revoke(key.id)
        assert revoked is not None
        assert revoked.status == "revoked"
        again = await indexes.repair_all(store, GRACE)
        assert team_id not in again["teams"].restored
        assert key.id not in again["keys"].restored

    run(redis_server, body)
