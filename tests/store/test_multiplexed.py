"""The multiplexed Redis connection: many callers, one socket, every reply to its own caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store.multiplexed import MultiplexedRedis
from tests.peer import SilentServer
from tests.servers import RedisServer, free_port


def _run(url: str, body: Callable[[MultiplexedRedis], Awaitable[Any]], timeout: float = 2) -> Any:
    async def main() -> Any:
        store = MultiplexedRedis(url, timeout)
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def test_concurrent_callers_each_get_their_own_replies(redis_server: RedisServer) -> None:
    async def body(store: MultiplexedRedis) -> None:
        async def one(n: int) -> None:
            key = f"mux-test:{n}"
            assert await store.execute([("SET", key, n), ("INCR", key), ("GET", key)]) == [
                "OK",
                n + 1,
                str(n + 1),
            ]

        await asyncio.gather(*(one(n) for n in range(2000)))

    _run(redis_server.url, body)


def test_transactions_of_concurrent_callers_are_not_interleaved(
    redis_server: RedisServer,
) -> None:
    async def body(store: MultiplexedRedis) -> list[Any]:
        async def one(n: int) -> Any:
            replies = await store.execute(
                [("MULTI",), ("SET", "mux-test:shared", n), ("GET", "mux-test:shared"), ("EXEC",)]
            )
            return replies[-1]

        return list(await asyncio.gather(*(one(n) for n in range(500))))

    results = _run(redis_server.url, body)
    assert results == [["OK", str(n)] for n in range(500)]


def test_an_error_reply_fails_only_its_caller(redis_server: RedisServer) -> None:
    async def body(store: MultiplexedRedis) -> None:
        await store.call("SET", "mux-test:text", "not a number")
        bad = store.call("INCR", "mux-test:text")
        good = store.call("PING")
        outcomes = await asyncio.gather(bad, good, return_exceptions=True)
        assert isinstance(outcomes[0], ResponseError)
        assert outcomes[1] == "PONG"
        assert await store.call("GET", "mux-test:text") == "not a number"

    _run(redis_server.url, body)


def test_a_cancelled_caller_does_not_shift_the_replies(redis_server: RedisServer) -> None:
    async def body(store: MultiplexedRedis) -> None:
        await store.call("SET", "mux-test:a", "a")
        slow = asyncio.create_task(store.call("GET", "mux-test:a"))
        await asyncio.sleep(0)
        slow.cancel()
        assert await store.call("ECHO", "mine") == "mine"
        assert await store.call("GET", "mux-test:a") == "a"

    _run(redis_server.url, body)


def test_a_silent_redis_times_out_quickly() -> None:
    with SilentServer() as silent:
        port = urlsplit(silent.url).port

        async def body(store: MultiplexedRedis) -> float:
            started = time.monotonic()
            with pytest.raises(RedisTimeoutError):
                await store.call("PING")
            return time.monotonic() - started

        took = _run(f"redis://127.0.0.1:{port}/0", body, timeout=0.3)
    assert 0.3 <= took < 1.5


def test_unreachable_redis_is_a_connection_error() -> None:
    port = free_port()  # nothing listens there

    async def body(store: MultiplexedRedis) -> None:
        with pytest.raises(RedisConnectionError):
            await store.call("PING")

    _run(f"redis://127.0.0.1:{port}/0", body)


def test_reconnects_after_redis_restarts() -> None:
    with RedisServer() as redis:

        async def body(store: MultiplexedRedis) -> None:
            assert await store.call("PING") == "PONG"
            redis.stop()
            with pytest.raises(RedisConnectionError):
                await store.call("PING")
            redis.start()
            assert await store.call("PING") == "PONG"

        _run(redis.url, body)


def test_password_and_database_from_the_url() -> None:
    with RedisServer(None, "--requirepass", "s3cret") as redis:
        authed = f"redis://:s3cret@127.0.0.1:{redis.port}/3"

        async def write(store: MultiplexedRedis) -> None:
            await store.call("SET", "mux-test:db", "three")

        async def read(store: MultiplexedRedis) -> list[Any]:
            return await store.execute(
                [("SELECT", 3), ("GET", "mux-test:db"), ("SELECT", 0), ("GET", "mux-test:db")]
            )

        async def wrong(store: MultiplexedRedis) -> None:
            with pytest.raises(AuthenticationError):
                await store.call("PING")

        _run(authed, write)
        assert _run(f"redis://:s3cret@127.0.0.1:{redis.port}/0", read) == [
            "OK",
            "three",
            "OK",
            None,
        ]
        _run(f"redis://:wrong@127.0.0.1:{redis.port}/0", wrong)
