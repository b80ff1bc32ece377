"""The keys from before sharding moved to their shards: the queued deliveries, their retries and
the reconciler's schedule, then the old keys deleted; a gateway started on such data delivers."""

from __future__ import annotations

import asyncio
import os
import time

import redis
from redis.asyncio import Redis

from gateway.store import legacy, redis_keys
from gateway.store.multiplexed import MultiplexedRedis
from gateway.store.scripts import Scripts
from tests.peer import Peer
from tests.relay.test_sharded_queue import write_pending_delivery
from tests.servers import Emulator, Gateway, RedisServer
from tests.store.test_scripts import METRICS, RETENTION

OLD = (
    redis_keys.LEGACY_DELIVERY_STREAM,
    redis_keys.LEGACY_DELIVERY_RETRIES,
    redis_keys.LEGACY_RECONCILE_DUE,
    redis_keys.LEGACY_RECONCILE_CLAIMED,
)


async def _migrate(url: str) -> int:
    store = MultiplexedRedis(url, 2.0)
    client = Redis.from_url(url, decode_responses=True)
    try:
        return await legacy.migrate(client, Scripts(store, METRICS, RETENTION), RETENTION)
    finally:
        await client.aclose()
        await store.aclose()


def test_the_old_queue_and_schedule_move_to_their_shards() -> None:
    teams = [f"t-{n}" for n in range(40)]
    with RedisServer() as own, redis.Redis.from_url(own.url, decode_responses=True) as direct:
        stream, retries, due, claimed = OLD
        direct.xgroup_create(stream, redis_keys.DELIVERY_GROUP, id="0", mkstream=True)
        for team in teams:
            direct.xadd(stream, {"team_id": team, "delivery_id": f"q-{team}"})
        # Some taken by an old process, pending in its consumer's list: moved all the same.
        direct.xreadgroup(redis_keys.DELIVERY_GROUP, "old", {stream: ">"}, count=5)
        later_ms = int((time.time() + 3600) * 1000)
        direct.zadd(retries, {f"{team} r-{team}": later_ms for team in teams})
        direct.zadd(due, {team: 1000.0 + n for n, team in enumerate(teams)})
        direct.zadd(claimed, {"claimed-team": time.time() + 300})

        assert asyncio.run(_migrate(own.url)) == 3 * len(teams) + 1
        assert direct.exists(*OLD) == 0
        for n, team in enumerate(teams):
            shard = redis_keys.shard_of(team)
            queued = direct.xrange(redis_keys.delivery_stream(shard))
            assert {"team_id": team, "delivery_id": f"q-{team}"} in [f for _, f in queued]
            retry_list = redis_keys.delivery_retries(shard)
            assert direct.zscore(retry_list, f"{team} r-{team}") == later_ms
            listed = direct.zrange(redis_keys.undelivered(team), 0, -1, withscores=True)
            assert dict(listed).keys() == {f"q-{team}", f"r-{team}"}
            # The retry's deadline follows its due time.
            assert dict(listed)[f"r-{team}"] >= later_ms / 1000 + RETENTION.delivery_grace - 1
            assert direct.zscore(redis_keys.reconcile_due(shard), team) == 1000.0 + n
        claimed_due = redis_keys.reconcile_due(redis_keys.shard_of("claimed-team"))
        assert direct.zscore(claimed_due, "claimed-team") == 0  # due at once
        assert asyncio.run(_migrate(own.url)) == 0  # nothing left: one EXISTS


def test_a_gateway_started_on_the_old_queue_delivers_its_entries(
    emulator: Emulator, peer: Peer
) -> None:
    with RedisServer() as own:
        with Gateway(own.url, emulator.url) as before:
            _, created = before.new_key()
        path = f"/hooks/legacy-{os.urandom(4).hex()}"
        delivery_id = f"legacy-{os.urandom(4).hex()}"
        now = time.time()
        with redis.Redis.from_url(own.url, decode_responses=True) as direct:
            write_pending_delivery(
                direct, str(created["id"]), delivery_id, f"{peer.url}{path}", now
            )
            stream = redis_keys.LEGACY_DELIVERY_STREAM
            direct.xgroup_create(stream, redis_keys.DELIVERY_GROUP, id="0", mkstream=True)
            direct.xadd(stream, {"team_id": "default", "delivery_id": delivery_id})
            with Gateway(own.url, emulator.url):
                peer.wait_for_posts(path, 1, timeout=30)
                deadline = time.monotonic() + 10
                while direct.zcard(redis_keys.undelivered("default")):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert direct.exists(stream) == 0
        assert len(peer.posts(path)) == 1
