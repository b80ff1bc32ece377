"""Where callers' webhooks may go: https (http only when allowed), never a private address.

Checked at submit, and again at delivery on the addresses the name resolves to then, so a name
that later resolves elsewhere (DNS rebinding) is caught; the delivery connects to the very address
that was checked. Loopback, private, link-local (cloud metadata), shared, multicast, reserved and
unspecified addresses are refused unless listed in ``GATEWAY_WEBHOOK_ALLOWED_NETWORKS``. An IPv6
address that carries an IPv4 one (IPv4-mapped or -compatible, NAT64, 6to4, Teredo) is refused too
when the IPv4 address it leads to would be.
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

    def check_url(self, url: str, name: str = "fal_webhook") -> str:
        """The host of an acceptable webhook URL (scheme and form only); refusals call it
        ``name``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefused(f"{name} is not a valid URL") from exc
        schemes = ("https", "http") if self._allow_http else ("https",)
        if parts.scheme.lower() not in schemes:
            raise TargetRefused(f"{name} must use {' or '.join(schemes)}")
        if not parts.hostname or parts.username or parts.password:
            raise TargetRefused(f"{name} must name a host, without credentials")
        if port == 0:
            raise TargetRefused(f"{name} has an invalid port")
        return parts.hostname

    def check_address(self, address: IPAddress) -> None:
        """Raise ``TargetRefused`` unless ``address``, and any IPv4 address it carries, may be
        called."""
        if self._allowed_address(address):
            return
        embedded = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if not _public(address) or (
            embedded is not None and not self._allowed_address(embedded) and not _public(embedded)
        ):
            raise TargetRefused(f"fal_webhook points at a non-public address ({address})")

    def _allowed_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self._allowed)

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


def _public(address: IPAddress) -> bool:
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
    )


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form leads to: IPv4-mapped (``::ffff:0:0/96``),
    6to4 (``2002::/16``), Teredo (``2001::/32``, the client's), NAT64 (``64:ff9b::/96``,
    ``64:ff9b:1::/48``) and IPv4-compatible (``::/96``); None for any other address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _LAST_32_BITS_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_SHARED = ipaddress.ip_network("100.64.0.0/10")
_LAST_32_BITS_IPV4 = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")
)
