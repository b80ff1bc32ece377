"""The gateway's Redis connection: explicit pool, timeouts and retries, and one error mapping.

redis-py 8 raises when its async pool is exhausted, so the pool size is set explicitly; every
command has a socket timeout so a hung Redis fails requests quickly (503) instead of piling them up.

After a failover, a connection still open to the old primary (now a replica) answers writes with
``READONLY``: redis-py then drops that connection and retries the command once on a new one, which
reaches whatever is primary now (the one DNS name of a managed Redis, or the primary the sentinels
name). A write is never half-done by a ``READONLY`` reply, so the retry cannot apply it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import StoreUnavailable
from gateway.settings import Settings
from gateway.store.address import ClusterSeeds, cluster_seeds, sentinel_service
from gateway.store.cluster import ClusterMultiplexedRedis
from gateway.store.multiplexed import MultiplexedRedis, Store

T = TypeVar("T")


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (connects to the primary the sentinels name), waiting for a
    free connection when all are busy as ``BlockingConnectionPool`` does; closing it closes
    the connections to the sentinels too."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.sentinel_manager.aclose()


_RETRIED = (RedisConnectionError, ReadOnlyError)
_NOT_RETRIED = (BusyLoadingError, AuthenticationError, AuthorizationError)
"""Connection errors a new connection would meet again: Redis loading its data (for seconds),
credentials refused."""


class _Retry(Retry):
    """A pooled connection that broke (a Redis restart, an idle connection cut) or reaches a
    replica (a failover) is dropped and the command retried on a new one; nothing else is
    retried. Not timeouts: the command may have run, and a hung Redis would take 3x as long to
    answer 503."""

    def __init__(self) -> None:
        super().__init__(ExponentialBackoff(cap=0.2, base=0.01), 2, _RETRIED)

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, _NOT_RETRIED):
                return False
            return is_retryable is None or is_retryable(error)

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


def connect_redis(settings: Settings) -> Redis:
    """A client for ``settings.redis_url`` (connections are opened lazily)."""
    options: dict[str, Any] = {
        "max_connections": settings.redis_pool_size,
        "timeout": settings.redis_timeout,
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "health_check_interval": 30,
        "retry": _Retry(),  # redis.asyncio's: the synchronous one never retries a coroutine
        "retry_on_error": list(_RETRIED),
        "decode_responses": True,
    }
    seeds = cluster_seeds(settings.redis_url)
    if seeds is not None:
        return _cluster_client(seeds, settings)
    service = sentinel_service(settings.redis_url)
    if service is None:
        # from_pool: the client owns the pool, so closing the client closes its connections.
        return Redis.from_pool(BlockingConnectionPool.from_url(settings.redis_url, **options))
    sentinel = service.sentinel(settings.redis_timeout, _sentinel_password(settings))
    client: Redis = sentinel.master_for(
        service.service,
        connection_pool_class=_BlockingSentinelPool,
        **{**options, **service.connection_options()},
    )
    return client


def _cluster_client(seeds: ClusterSeeds, settings: Settings) -> Redis:
    """redis-py's cluster client: it routes each command to its slot's primary, follows
    ``MOVED``/``ASK``, and splits a non-transactional pipeline by node (one round trip per
    node); a transaction's keys must share a slot. It retries a command on a connection error
    or a timeout after re-reading the slot map, so a timed-out control-plane write (an admin
    call, never the hot path's scripts) may be applied twice."""
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds.nodes],
        username=seeds.username,
        password=seeds.password,
        ssl=seeds.tls,
        decode_responses=True,
        max_connections=settings.redis_pool_size,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        # redis-py closes every connection of the client (other tasks' commands in flight
        # among them) on each 5th MOVED by default; 0 patches the slot map from each MOVED.
        reinitialize_steps=0,
    )
    # The same commands as a Redis client's; the few places that need to tell them apart
    # check ``isinstance(redis, RedisCluster)``.
    return cast(Redis, client)


def connect_store(settings: Settings) -> Store:
    """The hot path's multiplexed connection(s) to ``settings.redis_url`` (opened lazily)."""
    seeds = cluster_seeds(settings.redis_url)
    if seeds is not None:
        return ClusterMultiplexedRedis(seeds, settings.redis_timeout)
    return MultiplexedRedis(
        settings.redis_url, settings.redis_timeout, sentinel_password=_sentinel_password(settings)
    )


def _sentinel_password(settings: Settings) -> str | None:
    password = settings.redis_sentinel_password
    return password.get_secret_value() if password else None


UNAVAILABLE = (
    RedisConnectionError,  # BusyLoadingError (LOADING, after a restart) among them
    ClusterError,  # redis-py's cluster client out of redirections (a slot moving, a failover)
    RedisTimeoutError,
    MasterDownError,
    TryAgainError,
    ClusterDownError,
    ReadOnlyError,  # a replica, after a failover
)
"""What Redis raises when it cannot serve for now, whichever client made the call."""


def _unavailable(exc: BaseException | None) -> bool:
    # NOREPLICAS (a primary short of the replicas ``min-replicas-to-write`` asks for) has no
    # class of its own: a ResponseError whose message carries the code, prefixed in a pipeline
    # or a script.
    return isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, ResponseError) and "NOREPLICAS " in str(exc)
    )


class _StoreErrors:
    """Turns Redis being unreachable, or unable to serve for now, into a 503 (the gateway fails
    closed). A plain class rather than a generator-based context manager: it wraps every Redis
    call of the hot path."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if _unavailable(exc):
            raise StoreUnavailable(
                "The gateway's data store is unavailable; try again shortly"
            ) from exc


_STORE_ERRORS = _StoreErrors()


def store_errors() -> _StoreErrors:
    """``async with store_errors():`` around Redis calls: 503 when Redis cannot serve."""
    return _STORE_ERRORS


RedisFields = Mapping[Any, Any]
"""What ``HSET mapping=`` accepts; redis-py types its keys invariantly, so ``dict[str, str]``
needs this widening."""


def fields_of(raw: Any) -> dict[str, str]:
    """An ``HGETALL`` answer (decoded to ``str`` by the client) as typed fields."""
    return cast(dict[str, str], raw)
