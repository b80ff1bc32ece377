"""Whether the gateway's Redis clients reach a primary: what ``/readyz`` reports for Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ClusterDownError, ReadOnlyError, RedisError

from gateway.store.multiplexed import Store


async def redis_state(redis: Redis, store: Store) -> str:
    """``ok`` when both clients reach a primary; ``replica`` when one reaches only a replica
    (after a failover), whose connections are then dropped so they reconnect to whatever is
    primary now; ``down`` when Redis does not answer."""
    roles = await asyncio.gather(_pool_role(redis), store.role(), return_exceptions=True)
    for role in roles:
        if isinstance(role, BaseException) and not isinstance(role, RedisError):
            raise role
    if any(isinstance(role, RedisError) and not isinstance(role, ReadOnlyError) for role in roles):
        return "down"
    return "ok" if all(role == "master" for role in roles) else "replica"


async def _pool_role(redis: Redis) -> str:
    if isinstance(redis, RedisCluster):
        info = await redis.cluster_info()
        if info.get("cluster_state") != "ok":
            raise ClusterDownError("The Redis Cluster says it is down")
        return "master"
    async with redis.client() as one:  # one pooled connection, to drop it if it is stale
        role = str((await one.role())[0])
        if role != "master" and one.connection is not None:
            await one.connection.disconnect()
    if role != "master":
        await redis.connection_pool.disconnect(inuse_connections=False)
    return role
