"""Fixtures: a real emulator process, a loopback HTTP peer, and clients for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer

FAST_EMULATOR: dict[str, object] = {
    "queue_delay": 0.05,
    "run_time": 0.3,
    "log_interval": 0.1,
    "runners": 4,
    "webhook_retry_scale": 0.001,
    "fault_seed": 7,
}

SetKnobs = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(FAST_EMULATOR) as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with emulator.client() as http:
        yield http


@pytest.fixture
def knobs(client: httpx.Client) -> Iterator[SetKnobs]:
    """Change the shared emulator's knobs for one test; they are restored afterwards."""
    before = client.get("/_emulator/knobs").json()

    def set_knobs(**changes: Any) -> dict[str, Any]:
        response = client.patch("/_emulator/knobs", json=changes)
        response.raise_for_status()
        knob_values: dict[str, Any] = response.json()
        return knob_values

    yield set_knobs
    client.patch("/_emulator/knobs", json=before).raise_for_status()


@pytest.fixture(scope="session")
def peer() -> Iterator[Peer]:
    with Peer() as running:
        yield running


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


@pytest.fixture(scope="session")
def gateway(redis_server: RedisServer, emulator: Emulator) -> Iterator[Gateway]:
    with Gateway(redis_server.url, emulator.url) as running:
        yield running


@pytest.fixture
def caller(gateway: Gateway) -> Iterator[httpx.Client]:
    """A client of the gateway with a fresh key of its own."""
    token, _ = gateway.new_key()
    with gateway.client(token) as http:
        yield http
