"""The hot path's store on a real Redis Cluster: commands routed by slot, batches spanning nodes,
slots moving under it (``MOVED``, ``ASK``, ``TRYAGAIN``), scripts on every primary."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from gateway.store.address import cluster_seeds
from gateway.store.cluster import ClusterMultiplexedRedis, key_of
from tests.cluster_servers import RedisClusterServers


def _run(
    cluster: RedisClusterServers, body: Callable[[ClusterMultiplexedRedis], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        seeds = cluster_seeds(cluster.url)
        assert seeds is not None
        store = ClusterMultiplexedRedis(seeds, 2)
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def _node(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True)


def _keys_on_every_primary(cluster: RedisClusterServers, tag: str) -> list[str]:
    """One key per primary, in different slots."""
    found: dict[int, str] = {}
    index = 0
    while len(found) < len(cluster.primary_ports()):
        key = f"{tag}:{index}"
        found.setdefault(cluster.port_of(key), key)
        index += 1
    return list(found.values())


def test_a_batch_spans_every_primary_and_answers_in_order(
    redis_cluster: RedisClusterServers,
) -> None:
    tag = os.urandom(4).hex()
    keys = _keys_on_every_primary(redis_cluster, tag)

    async def body(store: ClusterMultiplexedRedis) -> list[Any]:
        return await store.execute(
            [
                *[("SET", key, f"value of {key}") for key in keys],
                ("MULTI",),
                ("INCR", f"{{{tag}}}:a"),
                ("INCRBY", f"{{{tag}}}:b", 5),
                ("EXEC",),
                *[("GET", key) for key in keys],
            ]
        )

    replies = _run(redis_cluster, body)
    assert replies[-len(keys) :] == [f"value of {key}" for key in keys]
    assert replies[len(keys) : len(keys) + 4] == ["OK", "QUEUED", "QUEUED", [1, 5]]
    for key in keys:  # each key is on the primary that serves its slot, and only there
        with _node(redis_cluster.port_of(key)) as node:
            assert node.get(key) == f"value of {key}"


def test_an_error_reply_is_raised_after_the_whole_batch_ran(
    redis_cluster: RedisClusterServers,
) -> None:
    tag = os.urandom(4).hex()
    keys = _keys_on_every_primary(redis_cluster, tag)

    async def body(store: ClusterMultiplexedRedis) -> None:
        await store.call("SET", keys[0], "text")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await store.execute([("HSET", keys[0], "f", "v"), *[("INCR", k) for k in keys[1:]]])

    _run(redis_cluster, body)
    for key in keys[1:]:
        with _node(redis_cluster.port_of(key)) as node:
            assert node.get(key) == "1"


def _other_primary(cluster: RedisClusterServers, port: int) -> int:
    return next(p for p in cluster.primary_ports() if p != port)


def test_a_slot_moved_since_the_map_was_read_is_followed_and_written_once(
    redis_cluster: RedisClusterServers,
) -> None:
    key = f"moving:{os.urandom(4).hex()}"

    async def body(store: ClusterMultiplexedRedis) -> list[Any]:
        await store.call("INCR", key)  # the map is read now
        before = redis_cluster.port_of(key)
        redis_cluster.move_slot(key_slot(key.encode()), _other_primary(redis_cluster, before))
        assert redis_cluster.port_of(key) != before
        # The store still sends to the old owner first: MOVED, then the new owner.
        return [await store.call("INCR", key), await store.call("INCR", key)]

    assert _run(redis_cluster, body) == [2, 3]


def test_a_key_already_migrated_is_asked_for_at_the_importing_node(
    redis_cluster: RedisClusterServers,
) -> None:
    tag = os.urandom(4).hex()
    moved, staying = f"{{{tag}}}:moved", f"{{{tag}}}:staying"
    slot = key_slot(moved.encode())
    source = redis_cluster.port_of(moved)
    target = _other_primary(redis_cluster, source)

    async def body(store: ClusterMultiplexedRedis) -> list[Any]:
        await store.execute([("SET", moved, "1"), ("SET", staying, "1")])
        migration = redis_cluster.begin_move(slot, target)
        migration.migrate_keys([moved])
        try:
            single = [
                await store.call("INCR", moved),  # ASK: served by the importing node
                await store.call("INCR", staying),  # still at the source
                await store.call("EVAL", "return redis.call('INCR', KEYS[1])", 1, moved),
            ]

            # A transaction over both keys cannot run while they are split: it waits until
            # the move is finished.
            def finish() -> None:
                migration.migrate_keys([staying])
                migration.finish()

            threading.Timer(0.1, finish).start()
            both = await store.execute([("MULTI",), ("INCR", moved), ("INCR", staying), ("EXEC",)])
            return [*single, both[-1]]
        finally:
            migration.finish()

    assert _run(redis_cluster, body) == [2, 2, 3, [4, 3]]
    assert redis_cluster.port_of(moved) == target


def test_scripts_are_loaded_on_every_primary(redis_cluster: RedisClusterServers) -> None:
    source = f"return '{os.urandom(4).hex()}'"
    for port in redis_cluster.primary_ports():
        with _node(port) as node:
            node.script_flush()

    async def body(store: ClusterMultiplexedRedis) -> None:
        await store.load_script(source)

    _run(redis_cluster, body)
    digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    for port in redis_cluster.primary_ports():
        with _node(port) as node:
            assert node.script_exists(digest) == [True]


def test_commands_are_routed_by_their_key() -> None:
    assert key_of(("EVALSHA", "abc", 2, "{t}:a", "{t}:b", "arg")) == "{t}:a"
    assert key_of(("EVALSHA", "abc", 0, "arg")) is None
    assert key_of(("XREADGROUP", "GROUP", "g", "c", "COUNT", 5, "STREAMS", "s", ">")) == "s"
    assert key_of(("PING",)) is None
    assert key_of(("HGETALL", "h")) == "h"


def test_the_store_says_master_while_every_slot_is_served(
    redis_cluster: RedisClusterServers,
) -> None:
    async def body(store: ClusterMultiplexedRedis) -> str:
        return await store.role()

    assert _run(redis_cluster, body) == "master"
