"""Both Redis clients after a failover, against real primaries, replicas and a sentinel: they
reach whatever is primary now, and a replica's refusals are errors ``store_errors`` makes 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError

from gateway.errors import StoreUnavailable
from gateway.settings import Settings
from gateway.store.multiplexed import MultiplexedRedis
from gateway.store.pool import UNAVAILABLE, connect_redis, store_errors
from tests.servers import RedisServer
from tests.store.replication import (
    Sentinel,
    SwitchableName,
    client,
    promote,
    sentinel_url,
)

WRITE_IN_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"


def _store(url: str, body: Callable[[MultiplexedRedis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = MultiplexedRedis(url, 2)
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def test_a_readonly_reply_makes_the_next_call_reconnect(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    a, b = pair
    with SwitchableName(a) as name:

        async def body(store: MultiplexedRedis) -> None:
            assert await store.call("SET", "fo:k", "1") == "OK"
            promote(b, a)
            name.switch(b)  # the connection already open still reaches a, now a replica
            with pytest.raises(ReadOnlyError):
                await store.call("SET", "fo:k", "2")
            assert await store.call("SET", "fo:k", "3") == "OK"

        _store(name.url, body)
    with client(b) as primary:
        assert primary.get("fo:k") == "3"


def test_a_write_refused_inside_a_script_is_a_readonly_error(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    a, b = pair
    with SwitchableName(a) as name:

        async def body(store: MultiplexedRedis) -> None:
            assert await store.call("EVAL", WRITE_IN_SCRIPT, 1, "fo:s", "1") == "OK"
            promote(b, a)
            with pytest.raises(ReadOnlyError):
                await store.call("EVAL", WRITE_IN_SCRIPT, 1, "fo:s", "2")

        _store(name.url, body)


def test_the_multiplexed_connection_refuses_a_replica(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    _, replica = pair

    async def body(store: MultiplexedRedis) -> None:
        with pytest.raises(ReadOnlyError):
            await store.call("GET", "fo:k")

    _store(replica.url, body)


def _pool(url: str, size: int = 10) -> Redis:
    return connect_redis(Settings(redis_url=url, redis_pool_size=size, redis_timeout=2))


@pytest.mark.parametrize("how", ["command", "pipeline", "transaction"])
def test_redis_py_retries_a_readonly_write_on_a_new_connection(
    pair: tuple[RedisServer, RedisServer], how: str
) -> None:
    a, b = pair

    async def write(redis: Redis, value: str) -> None:
        if how == "command":
            await redis.set("fo:p", value)
        else:
            async with redis.pipeline(transaction=how == "transaction") as pipe:
                pipe.set("fo:p", value)
                pipe.incr("fo:n")
                await pipe.execute()

    async def main() -> None:
        redis = _pool(name.url)
        try:
            await write(redis, "1")
            promote(b, a)
            name.switch(b)  # the pooled connection still reaches a, now a replica
            await write(redis, "2")
        finally:
            await redis.aclose()

    with SwitchableName(a) as name:
        asyncio.run(main())
    with client(b) as primary:
        assert primary.get("fo:p") == "2"


async def _until_served(call: Callable[[], Awaitable[Any]]) -> list[str]:
    """Retry ``call`` until it succeeds (30 s at most); the names of the errors on the way
    (each one that ``store_errors`` makes a 503, else raised)."""
    errors: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        try:
            await call()
            return errors
        except UNAVAILABLE as exc:
            errors.append(type(exc).__name__)
        assert time.monotonic() < deadline, f"not served again: {errors[-5:]}"
        await asyncio.sleep(0.05)


def test_both_clients_follow_the_sentinels_to_the_new_primary(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    a, b = pair
    with Sentinel(a) as sentinel:
        sentinel.wait_for_replicas(1)
        url = sentinel_url(sentinel)

        async def main() -> list[str]:
            redis, store = _pool(url, size=1), MultiplexedRedis(url, 2)
            try:
                # A pool of one is waited for, not exhausted (redis-py's Sentinel pool raises).
                await asyncio.gather(*(redis.incr("fo:pooled") for _ in range(5)))
                assert await store.call("INCR", "fo:pooled") == 6
                assert a.process is not None
                a.process.kill()
                errors = await _until_served(lambda: store.call("INCR", "fo:pooled"))
                return errors + await _until_served(lambda: redis.incr("fo:pooled"))
            finally:
                await redis.aclose()
                await store.aclose()

        errors = asyncio.run(main())
        assert sentinel.primary_port() == b.port
    assert errors  # the primary was away for a while
    with client(b) as primary:
        assert primary.get("fo:pooled") == "8"


def test_a_primary_short_of_replicas_refuses_writes_as_unavailable() -> None:
    """``min-replicas-to-write`` (see the README's operations part): a 503, from either client."""
    with RedisServer(None, "--min-replicas-to-write", "1") as lonely:

        async def main() -> None:
            store, redis = MultiplexedRedis(lonely.url, 2), _pool(lonely.url)

            async def pipelined() -> None:
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.set("fo:r", "1")
                    await pipe.execute()

            writes: list[Callable[[], Awaitable[Any]]] = [
                lambda: store.call("SET", "fo:r", "1"),
                lambda: store.call("EVAL", WRITE_IN_SCRIPT, 1, "fo:r", "1"),
                lambda: redis.set("fo:r", "1"),
                pipelined,
            ]
            try:
                for write in writes:
                    with pytest.raises(StoreUnavailable):
                        async with store_errors():
                            await write()
            finally:
                await redis.aclose()
                await store.aclose()

        asyncio.run(main())
