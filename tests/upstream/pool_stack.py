"""A pool of two fal accounts: an emulator that knows both keys, a Redis of its own (the pool
is shared by every gateway on a Redis) and gateways configured with both accounts."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from tests.servers import Emulator, Gateway, RedisServer

ONE_KEY = "one-key-0001:4f2c9d0e8b7a6f5e4d3c2b1a09f8e7d6"
TWO_KEY = "two-key-0002:a1b2c3d4e5f60718293a4b5c6d7e8f90"
ACCOUNTS = f"one={ONE_KEY},two={TWO_KEY}"


def fingerprint(key: str) -> str:
    """What the emulator's request log shows of a key (and the admin API of an account's)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


ONE, TWO = fingerprint(ONE_KEY), fingerprint(TWO_KEY)


def env_name(key: str) -> str:
    """The name ``GATEWAY_FAL_KEY`` gives a bare key's account."""
    return f"fal-{fingerprint(key)[:8]}"


@contextlib.contextmanager
def pool_stack(
    gateways: int = 1,
    emulator_settings: Mapping[str, object] | None = None,
    gateway_settings: Mapping[str, object] | None = None,
) -> Iterator[tuple[Emulator, list[Gateway]]]:
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(
            Emulator({"keys": f"{ONE_KEY},{TWO_KEY}", **(emulator_settings or {})})
        )
        redis = stack.enter_context(RedisServer())
        settings = {"fal_key": ACCOUNTS, **(gateway_settings or {})}
        started = [
            stack.enter_context(Gateway(redis.url, emulator.url, settings)) for _ in range(gateways)
        ]
        yield emulator, started


def emulator_log(emulator: Emulator) -> list[dict[str, Any]]:
    """Every request the emulator received, as its control API lists them."""
    with emulator.client(ONE_KEY) as client:
        entries: list[dict[str, Any]] = client.get("/_emulator/requests").json()["requests"]
    return entries


def accounts(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """The pool as the admin API lists it, by account name."""
    with gateway.admin() as admin:
        response = admin.get("/admin/v1/upstreams")
    response.raise_for_status()
    return {found["name"]: found for found in response.json()["upstreams"]}


def set_knobs(emulator: Emulator, **changes: Any) -> None:
    with emulator.client(ONE_KEY) as client:
        client.patch("/_emulator/knobs", json=changes).raise_for_status()


def status_of(client: httpx.Client, submitted: dict[str, Any]) -> str:
    response = client.get(submitted["status_url"])
    response.raise_for_status()
    state: str = response.json()["status"]
    return state
