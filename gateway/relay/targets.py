"""Where callers' webhooks may go: https (http only when allowed), never a private address.

Checked at submit, and again at delivery on the addresses the name resolves to then, so a name
that later resolves elsewhere (DNS rebinding) is caught; the delivery connects to the very address
that was checked. Loopback, private, link-local (cloud metadata), shared, multicast, reserved and
unspecified addresses are refused unless listed in ``GATEWAY_WEBHOOK_ALLOWED_NETWORKS``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(ValueError):
    """A webhook URL the gateway will not call; the message says why."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    address: str
    """The checked address to connect to."""

    def pinned_request(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """URL, headers and httpx extensions that reach the checked address while keeping the
        original host for ``Host`` and TLS (SNI and certificate checks)."""
        url = httpx.URL(self.url)
        return (
            str(url.copy_with(host=self.address)),
            {"Host": url.netloc.decode()},
            {"sni_hostname": self.host} if url.scheme == "https" else {},
        )


class TargetPolicy:
    def __init__(self, allow_http: bool, allowed_networks: Iterable[str]) -> None:
        self._allow_http = allow_http
        self._allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        )

    def check_url(self, url: str) -> str:
        """The host of an acceptable webhook URL (scheme and form only)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefused("fal_webhook is not a valid URL") from exc
        schemes = ("https", "http") if self._allow_http else ("https",)
        if parts.scheme.lower() not in schemes:
            raise TargetRefused(f"fal_webhook must use {' or '.join(schemes)}")
        if not parts.hostname or parts.username or parts.password:
            raise TargetRefused("fal_webhook must name a host, without credentials")
        if port == 0:
            raise TargetRefused("fal_webhook has an invalid port")
        return parts.hostname

    def check_address(self, address: IPAddress) -> None:
        if any(address in network for network in self._allowed):
            return
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
        ):
            raise TargetRefused(f"fal_webhook points at a non-public address ({address})")

    async def resolve(self, url: str) -> Target:
        """Check ``url`` and every address its host resolves to now; the address to use."""
        return await self._resolved(url, self.check_url(url))

    async def resolve_public(self, url: str) -> Target:
        """Like ``resolve`` for a URL the gateway itself reads (http or https, any port): only
        its addresses are checked."""
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            raise TargetRefused("not a valid URL") from exc
        if not host:
            raise TargetRefused("no host")
        return await self._resolved(url, host)

    async def _resolved(self, url: str, host: str) -> Target:
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise TargetRefused(f"fal_webhook host {host} does not resolve") from exc
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in addresses:
            self.check_address(address)
        return Target(url=url, host=host, address=str(addresses[0]))


_SHARED = ipaddress.ip_network("100.64.0.0/10")
