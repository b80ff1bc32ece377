"""One pipelined Redis connection shared by all the requests of a process: the hot path's store.

redis-py takes a connection from its pool for every command and arms a timer for every read,
which costs about 100 µs of CPU per call on this project's benchmark machine, more than the rest
of a status poll together. Here concurrent callers write their commands to a single connection
and replies are matched to callers in order (Redis answers one connection's commands in the
order it received them), parsed by hiredis; the commands sent during one turn of the event loop
go out in one write. One watchdog per connection enforces the timeout on
the oldest reply outstanding. A batch of commands is written in one piece, so a ``MULTI``/
``EXEC`` batch is never interleaved with other callers' commands.

Failures surface as redis-py's exceptions, so ``store_errors`` maps them to 503 as for any other
Redis call. Nothing is retried: a command whose connection broke may or may not have run.

Failover: every (re)connect asks the sentinels for the primary (with a ``redis+sentinel://``
URL) and checks with ``ROLE`` that the server is a primary. A ``READONLY`` reply (the server was
demoted while connected) closes the connection, so the next call reconnects to whatever is
primary now; the commands in flight on it fail (on a replica none of their writes ran).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import hiredis
from redis.asyncio.sentinel import Sentinel
from redis.connection import SSLConnection, parse_url
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store.address import sentinel_service

Command = Sequence[str | int | float | bytes]


class Store(Protocol):
    """The hot path's Redis: ``MultiplexedRedis`` (one server) or ``ClusterMultiplexedRedis``."""

    async def call(self, *command: str | int | float | bytes) -> Any:
        """One command's reply (a Redis error reply is raised, see ``_reply_error``)."""
        (reply,) = await self.execute([command])
        return reply

    async def execute(
        self, commands: Sequence[Command], *, raise_on_error: bool = True
    ) -> list[Any]:
        """Several commands' replies, in order: an error reply of any is raised, or with
        ``raise_on_error=False`` left in its place as an exception."""

    async def load_script(self, source: str) -> None:
        """Make a Lua script known to Redis, on every primary."""

    async def role(self) -> str:
        """``master`` when the store reaches primaries only."""

    async def aclose(self) -> None: ...


_UNAVAILABLE_REPLIES: dict[str, type[RedisError]] = {
    "LOADING": BusyLoadingError,
    "MASTERDOWN": MasterDownError,
    "TRYAGAIN": TryAgainError,
    "CLUSTERDOWN": ClusterDownError,
    "READONLY": ReadOnlyError,
}


_IN_SCRIPT = re.compile(r"^ERR Error running script .*?: -([A-Z]+) ")
"""Redis 6 reports an error of a ``redis.call`` inside a script as ``ERR Error running script
(call to f_...): @user_script:9: @user_script: 9: -READONLY You can't write ...``; Redis 7
keeps the inner code first."""


def _reply_error(message: str) -> RedisError:
    """An error reply saying Redis cannot serve for now (also from inside a script) as the
    exception redis-py raises for it (which ``store_errors`` makes a 503); any other as a
    ``ResponseError``. The whole message is kept, so callers can still tell e.g. ``NOSCRIPT``
    by its prefix."""
    code = message.split(" ", 1)[0]
    if code == "ERR" and (inner := _IN_SCRIPT.match(message)):
        code = inner.group(1)
    unavailable = _UNAVAILABLE_REPLIES.get(code)
    return unavailable(message) if unavailable is not None else ResponseError(message)


def hash_reply(reply: list[str]) -> dict[str, str]:
    """An ``HGETALL`` reply as this connection gives it (field, value, field, value, ...), as a
    dict."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _pack(command: Command) -> bytes:
    # hiredis's stub types the argument as a one-element tuple; it takes any length.
    packed: bytes = hiredis.pack_command(cast(Any, tuple(command)))
    return packed


@dataclass
class _Batch:
    """Commands written together, answered together."""

    size: int
    sent_at: float
    answered: asyncio.Future[list[Any]]
    replies: list[Any] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", replyError=_reply_error)
        self._pending: deque[_Batch] = deque()
        self._outgoing: list[bytes] = []
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._failure: Exception | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def usable(self) -> bool:
        return self._transport is not None and self._failure is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._arm_watchdog()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            batch = self._pending[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.size:
                self._pending.popleft()
                if not batch.answered.done():  # else its caller was cancelled
                    batch.answered.set_result(batch.replies)
            if isinstance(reply, ReadOnlyError):  # a replica now: reconnect for the next call
                self._fail(ReadOnlyError("Redis became a replica; connection closed"))
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(self._failure or RedisConnectionError("Connection to Redis lost"))

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        if not self.usable:
            raise self._failure or RedisConnectionError("Connection to Redis closed")
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        batch = _Batch(len(commands), time.monotonic(), loop.create_future())
        self._pending.append(batch)
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.extend(_pack(command) for command in commands)
        return batch.answered

    def _flush(self) -> None:
        """Write everything sent during this turn of the event loop in one system call."""
        if self._transport is not None and self._failure is None:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def close(self) -> None:
        self._fail(RedisConnectionError("Connection to Redis closed"))

    def _fail(self, failure: Exception) -> None:
        if self._failure is None:
            self._failure = failure
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._transport is not None:
            self._transport.abort()
        while self._pending:
            batch = self._pending.popleft()
            if not batch.answered.done():
                batch.answered.set_exception(failure)
                batch.answered.exception()  # retrieved, in case its caller has gone

    def _arm_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(min(0.1, self._timeout / 4), self._check)

    def _check(self) -> None:
        if self._pending and time.monotonic() - self._pending[0].sent_at > self._timeout:
            self._fail(RedisTimeoutError("Timeout reading from Redis"))
            return
        self._arm_watchdog()


Location = str | tuple[str, int]
"""A Unix socket's path, or a host and port."""


class Link:
    """One server's multiplexed connection: opened on first use, and again on the first use
    after it broke. ``locate`` says where the server is at each (re)connect; the handshake
    authenticates and selects the database as ``options`` (redis-py's ``parse_url`` keys) say,
    and with ``primary_only`` checks the server is a primary."""

    def __init__(
        self,
        locate: Callable[[], Awaitable[Location]],
        options: dict[str, Any],
        timeout: float,
        *,
        primary_only: bool = True,
    ) -> None:
        self._locate = locate
        self._options = options
        self._timeout = timeout
        self._primary_only = primary_only
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._attempts = 0
        self._last_failure: RedisError | None = None

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands``, error replies among them as exceptions."""
        connection = await self._connected()
        return await connection.send(commands)

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._connection is not None:
            self._connection.close()

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        attempt = self._attempts
        async with self._connecting:
            if self._connection is not None and self._connection.usable:
                return self._connection
            if self._attempts != attempt and self._last_failure is not None:
                # An attempt made while this caller waited failed: fail alike rather than
                # queue one more attempt per waiting caller behind a Redis that is away.
                raise type(self._last_failure)(*self._last_failure.args)
            self._attempts += 1
            try:
                self._connection = await self._connect()
            except RedisError as exc:
                self._last_failure = exc
                raise
            self._last_failure = None
            return self._connection

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._timeout):
                connection = await self._open()
                try:
                    await self._handshake(connection)
                except BaseException:
                    connection.close()  # timed out or cancelled half-way: no socket left open
                    raise
        except TimeoutError as exc:
            raise RedisTimeoutError("Timeout connecting to Redis") from exc
        except OSError as exc:
            raise RedisConnectionError("Could not connect to Redis") from exc
        return connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()

        def protocol() -> _Connection:
            return _Connection(self._timeout)

        location = await self._locate()
        if isinstance(location, str):
            _, connection = await loop.create_unix_connection(protocol, location)
            return connection
        options = self._options
        tls = (
            ssl.create_default_context()
            if options.get("connection_class") is SSLConnection or options.get("ssl")
            else None
        )
        _, connection = await loop.create_connection(protocol, *location, ssl=tls)
        return connection

    async def _handshake(self, connection: _Connection) -> None:
        """Authenticate and select the database, as the options say, and make sure the server
        is a primary (a replica would refuse every write)."""
        commands: list[Command] = []
        if password := self._options.get("password"):
            username = self._options.get("username")
            commands.append(("AUTH", username, password) if username else ("AUTH", password))
        if db := self._options.get("db"):
            commands.append(("SELECT", db))
        if self._primary_only:
            commands.append(("ROLE",))
        if not commands:
            return
        replies = await connection.send(commands)
        greetings = replies[:-1] if self._primary_only else replies
        if any(isinstance(reply, RedisError) for reply in greetings):
            connection.close()
            raise AuthenticationError("Redis refused the gateway's credentials")
        role = replies[-1]  # an error (ROLE not allowed) cannot tell; READONLY replies will
        if self._primary_only and not isinstance(role, RedisError) and role[0] != "master":
            connection.close()
            raise ReadOnlyError("Redis is a replica, not the primary; retrying")


def raise_errors(replies: list[Any]) -> list[Any]:
    """``replies``, unless one is an error reply: then the first of those is raised."""
    for reply in replies:
        if isinstance(reply, RedisError):
            raise reply
    return replies


class MultiplexedRedis(Store):
    """Commands from any number of concurrent callers over one Redis connection."""

    def __init__(self, url: str, timeout: float, *, sentinel_password: str | None = None) -> None:
        self._service = sentinel_service(url)
        self._sentinel: Sentinel | None = None
        if self._service is not None:
            options: dict[str, Any] = self._service.connection_options()
            self._sentinel = self._service.sentinel(timeout, sentinel_password)
        else:
            options = parse_url(url)  # type: ignore[no-untyped-call]
        self._options = options
        self._link = Link(self._locate, options, timeout)

    async def execute(
        self, commands: Sequence[Command], *, raise_on_error: bool = True
    ) -> list[Any]:
        """Several commands in one round trip; their replies in order. An error reply of any
        of them is raised (after all have been answered), unless ``raise_on_error`` is False:
        then it is left in its place, as an exception."""
        replies = await self._link.send(commands)
        return raise_errors(replies) if raise_on_error else replies

    async def load_script(self, source: str) -> None:
        """Make a Lua script known to Redis (for ``EVALSHA``)."""
        await self.call("SCRIPT", "LOAD", source)

    async def role(self) -> str:
        """``master``, or ``slave`` after closing the connection (the next call reconnects, to
        the primary if there is one now)."""
        role = str((await self.call("ROLE"))[0])
        if role != "master":
            self._link.close()
        return role

    async def aclose(self) -> None:
        self._link.close()
        if self._sentinel is not None:
            await self._sentinel.aclose()

    async def _locate(self) -> Location:
        """The server of the URL, or the primary the sentinels name."""
        options = self._options
        if "path" in options:
            return str(options["path"])
        if self._sentinel is not None and self._service is not None:
            host, port = await self._sentinel.discover_master(self._service.service)
            return str(host), int(port)
        return str(options.get("host", "localhost")), int(options.get("port", 6379))
