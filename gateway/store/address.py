"""Where the gateway's Redis is: one server (``redis://``, ``rediss://``, ``unix://``), the
primary of a Sentinel service (``redis+sentinel://``, ``rediss+sentinel://``), or a Redis Cluster
(``redis+cluster://``, ``rediss+cluster://``).

The Sentinel form::

    redis+sentinel://[[user]:password@]host1[:26379][,host2[:26379]...]/service-name[/db]

``user``/``password`` are the Redis servers' credentials (a password for Sentinel itself is the
``redis_sentinel_password`` setting); ``rediss+sentinel`` speaks TLS to the sentinels and the
servers. Both of the gateway's clients ask the sentinels for the primary on every (re)connect.

The Cluster form names some of its nodes (any of them will do; the clients learn the rest)::

    redis+cluster://[[user]:password@]host1[:6379][,host2[:6379]...][/]

A cluster has only database 0, so the URL has no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
"""The Sentinel schemes, and whether each speaks TLS."""

SENTINEL_PORT = 26379
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""The Cluster schemes, and whether each speaks TLS."""
REDIS_PORT = 6379


class InvalidRedisUrl(ValueError):
    """A ``redis+sentinel://`` or ``redis+cluster://`` URL that cannot be read (the message
    never repeats the URL: it may hold a password)."""


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
    """The Sentinel service ``url`` names, or None when it names something else."""
    parsed = _multi_host(url, SENTINEL_SCHEMES, SENTINEL_PORT, "sentinel")
    if parsed is None:
        return None
    hosts, path, username, password, tls = parsed
    service, _, db = path.partition("/")
    if not service:
        raise InvalidRedisUrl("a redis+sentinel URL needs a service name: .../<service>[/<db>]")
    db = db.strip("/")
    if db and not db.isdigit():
        raise InvalidRedisUrl("the database of a redis+sentinel URL is a number")
    return SentinelService(hosts, unquote(service), int(db or 0), username, password, tls)


@dataclass(frozen=True)
class ClusterSeeds:
    """Nodes of a Redis Cluster to learn the cluster from, and how to talk to its nodes."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def cluster_seeds(url: str) -> ClusterSeeds | None:
    """The cluster ``url`` names, or None when it names something else."""
    parsed = _multi_host(url, CLUSTER_SCHEMES, REDIS_PORT, "cluster node")
    if parsed is None:
        return None
    nodes, path, username, password, tls = parsed
    if path.strip("/") not in ("", "0"):
        raise InvalidRedisUrl("a Redis Cluster has only database 0; leave it out of the URL")
    return ClusterSeeds(nodes, username, password, tls)


def _multi_host(
    url: str, schemes: dict[str, bool], default_port: int, what: str
) -> tuple[tuple[tuple[str, int], ...], str, str | None, str | None, bool] | None:
    """Hosts, path, credentials and TLS of a URL naming several hosts in one of ``schemes``;
    None for another scheme."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in schemes:
        return None
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    found = tuple(_host_port(part, default_port, what) for part in hosts.split(",") if part)
    if not found:
        raise InvalidRedisUrl(f"a {scheme.lower()} URL needs at least one {what} host")
    return found, path.split("?", 1)[0], username, password, schemes[scheme.lower()]


def _host_port(part: str, default_port: int, what: str) -> tuple[str, int]:
    try:
        parsed = urlsplit(f"//{part}")
        port = parsed.port
    except ValueError as exc:
        raise InvalidRedisUrl(f"a {what}'s port is not a number from 1 to 65535") from exc
    if not parsed.hostname:
        raise InvalidRedisUrl(f"a {what} host is empty")
    return parsed.hostname, port or default_port
