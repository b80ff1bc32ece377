"""Webhook targets: an IPv6 address that carries an IPv4 one is judged by that IPv4 too."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from gateway.relay.targets import TargetPolicy, TargetRefused, embedded_ipv4
from tests.jobs import KONTEXT, valid_body
from tests.servers import Emulator, UpstreamLog


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),  # IPv4-mapped
        ("::10.0.0.1", "10.0.0.1"),  # IPv4-compatible
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64, well-known prefix
        ("64:ff9b:1::c0a8:1", "192.168.0.1"),  # NAT64, local-use prefix
        ("2002:a00:1::1", "10.0.0.1"),  # 6to4
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),  # Teredo: client bits XORed
        ("2606:4700::1111", None),
    ],
)
def test_the_ipv4_address_each_ipv6_form_carries(address: str, carried: str | None) -> None:
    found = embedded_ipv4(ipaddress.IPv6Address(address))
    assert found == (None if carried is None else ipaddress.IPv4Address(carried))


@pytest.mark.parametrize(
    "address",
    [
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the cloud metadata address
        "2002:6440:1::1",  # 6to4 of shared address space 100.64.0.1
        "2002:c0a8:1:1::1",  # 6to4 of 192.168.0.1
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b:1::a9fe:a9fe",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    ],
)
def test_ipv6_forms_of_non_public_ipv4_addresses_are_refused(address: str) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        TargetPolicy(False, []).check_address(ipaddress.IPv6Address(address))


def test_embedded_addresses_follow_the_ipv4_rules_allowed_networks_included() -> None:
    six_to_four_of_public = ipaddress.IPv6Address("2002:808:808::1")  # 8.8.8.8
    TargetPolicy(False, []).check_address(six_to_four_of_public)
    private = ipaddress.IPv6Address("2002:a00:1::1")  # 10.0.0.1
    TargetPolicy(False, ["10.0.0.0/8"]).check_address(private)
    with pytest.raises(TargetRefused):
        TargetPolicy(False, ["192.168.0.0/16"]).check_address(private)


def test_a_6to4_webhook_to_a_private_address_is_refused_at_submit(
    caller: httpx.Client, emulator: Emulator
) -> None:
    # The session gateway allows plain http and 127.0.0.0/8 only.
    upstream = UpstreamLog(emulator)
    response = caller.post(
        f"/{KONTEXT}",
        json=valid_body(KONTEXT),
        params={"fal_webhook": "http://[2002:a00:1::1]/hook"},
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["query", "fal_webhook"], "webhook_target")
    assert upstream.submits() == []
