"""Resharding under traffic: the slots holding live teams, their delivery queue shards and
their reconcile schedule shards move between primaries (as ``redis-cli --cluster reshard`` moves
them) while jobs are submitted, run, settled and their webhooks delivered through two gateway
processes. Nothing is lost, nothing charged twice."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import traceback
from collections import Counter
from contextlib import ExitStack
from typing import Any

import httpx
from redis.crc import key_slot

from gateway.store import redis_keys
from tests.cluster_servers import RedisClusterServers
from tests.jobs import KONTEXT, valid_body
from tests.limits.conftest import ledger, settled_when, team_state
from tests.peer import Peer
from tests.servers import Emulator, Gateway

TEAMS = 4
JOBS_PER_WAVE = 4
"""Jobs per team in each wave; waves go on until every slot has moved twice."""
FUNDS = 10**9


class _Mover:
    """Moves ``slots`` round the primaries, one after another, until stopped; counts moves."""

    def __init__(self, cluster: RedisClusterServers, slots: list[int]) -> None:
        self._cluster = cluster
        self._slots = slots
        self._stop = threading.Event()
        self.moves = 0
        self.rounds = 0
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        primaries = itertools.cycle(self._cluster.primary_ports())
        try:
            while not self._stop.is_set():
                for slot in self._slots:
                    target = next(primaries)
                    if target != self._cluster.port_of_slot(slot):
                        self._cluster.move_slot(slot, target)
                        self.moves += 1
                self.rounds += 1
                self._stop.wait(0.05)
        except Exception:  # noqa: BLE001 (reported by the test)
            # redis-py's repr of a server error hides its message; the test shows all of it.
            self.failure = traceback.format_exc()

    def __enter__(self) -> _Mover:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


async def _job(
    gateway: Gateway, token: str, hook: str, index: int
) -> tuple[httpx.Response, dict[str, Any] | None]:
    """Submit with a webhook, wait for completion and fetch the result."""
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        await asyncio.sleep(index * 0.02)
        submitted = await client.post(
            f"/{KONTEXT}", json=valid_body(KONTEXT), params={"fal_webhook": hook}
        )
        if submitted.status_code != 200:
            return submitted, None
        for _ in range(600):
            status = await client.get(submitted.json()["status_url"])
            if status.status_code == 200 and status.json()["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.05)
        result = await client.get(submitted.json()["response_url"])
        return submitted, {"status": result.status_code}


def test_moving_live_teams_slots_loses_nothing_and_charges_once(
    redis_cluster: RedisClusterServers, fast_emulator: Emulator, peer: Peer
) -> None:
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(Gateway(redis_cluster.url, fast_emulator.url)) for _ in range(2)
        ]
        teams = [f"reshard-{os.urandom(3).hex()}-{n}" for n in range(TEAMS)]
        tokens, hooks = {}, {}
        for team in teams:
            gateways[0].ensure_team(team, FUNDS)
            tokens[team] = gateways[0].new_key(team_id=team)[0]
            hooks[team] = f"/hooks/{team}"
        # The teams' own slots, and their shards' of the delivery queue and reconcile schedule.
        live = [
            key
            for t in teams
            for key in (
                redis_keys.team_record(t),
                redis_keys.delivery_stream(redis_keys.shard_of(t)),
                redis_keys.reconcile_due(redis_keys.shard_of(t)),
            )
        ]
        slots = sorted({key_slot(key.encode()) for key in live})

        async def traffic(mover: _Mover) -> list[tuple[httpx.Response, dict[str, Any] | None]]:
            outcomes: list[tuple[httpx.Response, dict[str, Any] | None]] = []
            while mover.rounds < 2 and mover.failure is None:
                outcomes += await asyncio.gather(
                    *(
                        _job(gateways[i % 2], tokens[team], f"{peer.url}{hooks[team]}", i)
                        for team in teams
                        for i in range(JOBS_PER_WAVE)
                    )
                )
            return outcomes

        with _Mover(redis_cluster, slots) as mover:
            outcomes = asyncio.run(traffic(mover))
        assert mover.failure is None, mover.failure
        redis_cluster.wait_ok()

        assert Counter(r.status_code for r, _ in outcomes) == {200: len(outcomes)}
        assert all(result == {"status": 200} for _, result in outcomes)
        for team in teams:
            admitted = [
                r.json()["request_id"]
                for r, _ in outcomes
                if r.request.headers["authorization"] == f"Bearer {tokens[team]}"
            ]
            cost = {
                int(r.headers["x-gateway-reserved-micros"])
                for r, _ in outcomes
                if r.request.headers["authorization"] == f"Bearer {tokens[team]}"
            }
            assert len(cost) == 1
            settled_when(lambda t=team: team_state(gateways[1], t)["reserved_micros"] == 0)
            entries = [e for e in ledger(gateways[1], team) if e["kind"] == "usage"]
            assert Counter(e["request_id"] for e in entries) == Counter(admitted)  # once each
            assert team_state(gateways[0], team)["balance_micros"] == FUNDS - len(admitted) * next(
                iter(cost)
            )
            delivered = peer.wait_for_posts(hooks[team], len(admitted))
            ids = Counter(d.headers.get("webhook-id") for d in delivered)
            assert set(ids) == set(admitted)  # every job's webhook arrived
