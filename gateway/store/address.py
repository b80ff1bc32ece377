"""Where the gateway's Redis is: one server (``redis://``, ``rediss://``, ``unix://``) or the
primary of a Sentinel service (``redis+sentinel://``, ``rediss+sentinel://``).

The Sentinel form::

    redis+sentinel://[[user]:password@]host1[:26379][,host2[:26379]...]/service-name[/db]

``user``/``password`` are the Redis servers' credentials (a password for Sentinel itself is the
``redis_sentinel_password`` setting); ``rediss+sentinel`` speaks TLS to the sentinels and the
servers. Both of the gateway's clients ask the sentinels for the primary on every (re)connect.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
"""The Sentinel schemes, and whether each speaks TLS."""

SENTINEL_PORT = 26379


class InvalidRedisUrl(ValueError):
    """A ``redis+sentinel://`` URL that cannot be read (the message never repeats the URL: it
    may hold a password)."""


@dataclass(frozen=True)
class SentinelService:
    """The primary of a Sentinel service, and how to talk to it."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def connection_options(self) -> dict[str, object]:
        """Keyword arguments of a redis-py connection to the service's servers."""
        options: dict[str, object] = {"db": self.db}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        if self.tls:
            options["ssl"] = True
        return options

    def sentinel(self, timeout: float, sentinel_password: str | None) -> Sentinel:
        """A redis-py client of the sentinels (connections are opened lazily)."""
        options: dict[str, object] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": True,
        }
        if sentinel_password:
            options["password"] = sentinel_password
        if self.tls:
            options["ssl"] = True
        return Sentinel(list(self.sentinels), sentinel_kwargs=options)  # type: ignore[no-untyped-call]


def sentinel_service(url: str) -> SentinelService | None:
    """The Sentinel service ``url`` names, or None when it names one server."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in SENTINEL_SCHEMES:
        return None
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(part) for part in hosts.split(",") if part)
    if not sentinels:
        raise InvalidRedisUrl("a redis+sentinel URL needs at least one sentinel host")
    service, _, db = path.split("?", 1)[0].partition("/")
    if not service:
        raise InvalidRedisUrl("a redis+sentinel URL needs a service name: .../<service>[/<db>]")
    db = db.strip("/")
    if db and not db.isdigit():
        raise InvalidRedisUrl("the database of a redis+sentinel URL is a number")
    return SentinelService(
        sentinels,
        unquote(service),
        int(db or 0),
        username,
        password,
        SENTINEL_SCHEMES[scheme.lower()],
    )


def _host_port(part: str) -> tuple[str, int]:
    try:
        parsed = urlsplit(f"//{part}")
        port = parsed.port
    except ValueError as exc:
        raise InvalidRedisUrl("a sentinel's port is not a number from 1 to 65535") from exc
    if not parsed.hostname:
        raise InvalidRedisUrl("a sentinel host is empty")
    return parsed.hostname, port or SENTINEL_PORT
