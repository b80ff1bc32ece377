"""A fleet: three gateway processes sharing one Redis, in front of a fast emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.servers import Emulator, Gateway

FLEET_SIZE = 3


@pytest.fixture(scope="package")
def fleet(redis_url: str, fast_emulator: Emulator) -> Iterator[list[Gateway]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(Gateway(redis_url, fast_emulator.url)) for _ in range(FLEET_SIZE)
        ]


@pytest.fixture
def knobs(fast_emulator: Emulator) -> Iterator[Any]:
    """A function that changes the fast emulator's knobs; they are as before once the test ends."""
    with fast_emulator.client() as client:
        before = client.get("/_emulator/knobs").json()

    def set_knobs(**changes: Any) -> None:
        with fast_emulator.client() as client:
            client.patch("/_emulator/knobs", json=changes).raise_for_status()

    yield set_knobs
    set_knobs(**before)


def new_team(gateway: Gateway, funds: int, **limits: Any) -> str:
    team_id = f"t-{os.urandom(5).hex()}"
    gateway.ensure_team(team_id, funds, **limits)
    return team_id


def team_state(gateway: Gateway, team_id: str) -> dict[str, Any]:
    with gateway.admin() as admin:
        team: dict[str, Any] = admin.get(f"/admin/v1/teams/{team_id}").json()
    return team


def ledger(gateway: Gateway, team_id: str) -> list[dict[str, Any]]:
    with gateway.admin() as admin:
        entries: list[dict[str, Any]] = admin.get(
            f"/admin/v1/teams/{team_id}/ledger", params={"limit": 10_000}
        ).json()["entries"]
    return entries


def usage(gateway: Gateway, **query: str) -> list[dict[str, Any]]:
    with gateway.admin() as admin:
        response = admin.get("/admin/v1/usage", params=query)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["usage"]
    return rows


def settled_when(check: Any, timeout: float = 20.0) -> None:
    """Wait until ``check()`` is true (settlement happens in the background)."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not settled in time"
        time.sleep(0.05)


def client_for(gateway: Gateway, team_id: str, **fields: Any) -> httpx.Client:
    token, _ = gateway.new_key(team_id=team_id, **fields)
    return gateway.client(token)
