"""Reconciliation follows open work: idle teams cost nothing, replicas share the work, a dead
replica's claims are taken over, the audit finds reservations missing from the schedule.

Each test has a Redis of its own: a pass claims every due team of its Redis."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis

from gateway.store import redis_keys
from tests.jobs import KONTEXT, submit, valid_body
from tests.limits.conftest import client_for, ledger, new_team, settled_when, team_state, usage
from tests.peer import SilentServer
from tests.servers import Emulator, Gateway, RedisServer

FUNDS = 10_000_000
COST = 108  # one KONTEXT job of valid_body's size
FAST = {"reconcile_interval": 0.2, "reconcile_after": 0.1}
ADMITTER = {"reconcile_interval": 3600, "reconcile_after": 3600, "public_url": "http://127.0.0.1:9"}
"""A gateway that admits but never reconciles (its one pass at start-up aside), and never hears
of its jobs' ends: fal's webhooks go to a closed port."""


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


def _monitor(server: RedisServer, seconds: float) -> str:
    """Every command Redis ran during ``seconds`` (those of scripts included), as MONITOR
    prints them."""
    seen = b""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"MONITOR\r\n")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                seen += sock.recv(65536)
            except TimeoutError:
                break
    return seen.decode(errors="replace")


def _claimed(store: redis.Redis) -> int:
    """Teams claimed by passes, over every shard."""
    shards = range(redis_keys.SHARDS)
    return sum(int(store.zcard(redis_keys.reconcile_claimed(n))) for n in shards)


def _due(store: redis.Redis) -> set[str]:
    """Teams on the schedule, over every shard."""
    shards = range(redis_keys.SHARDS)
    return {str(t) for n in shards for t in store.zrange(redis_keys.reconcile_due(n), 0, -1)}


def _submit_orphans(gateway: Gateway, teams: list[str], jobs_per_team: int) -> None:
    """Jobs nobody will ask about again (they finish at fal at once)."""
    for team in teams:
        with client_for(gateway, team) as client:
            for _ in range(jobs_per_team):
                submit(client, KONTEXT, valid_body(KONTEXT))


def _settled_once(gateway: Gateway, team: str, jobs: int) -> bool:
    state = team_state(gateway, team)
    if state["reserved_micros"] != 0:
        return False
    assert state["balance_micros"] == FUNDS - jobs * COST
    assert len([e for e in ledger(gateway, team) if e["kind"] == "usage"]) == jobs
    return True


def test_a_pass_leaves_idle_teams_alone(own_redis: RedisServer, fast_emulator: Emulator) -> None:
    with Gateway(own_redis.url, fast_emulator.url, FAST) as gateway:
        idle = [new_team(gateway, FUNDS) for _ in range(20)]
        busy = new_team(gateway, FUNDS)
        _submit_orphans(gateway, [busy], 1)
        commands = _monitor(own_redis, 1.5)  # several passes
    assert redis_keys.reconcile_due(redis_keys.shard_of(busy)) in commands  # passes ran
    for team in idle:
        assert f"{{{team}}}" not in commands, team


def test_replicas_settle_orphans_once_and_take_over_a_dead_ones_claims(
    own_redis: RedisServer, fast_emulator: Emulator
) -> None:
    with Gateway(own_redis.url, fast_emulator.url, ADMITTER) as admitter:
        teams = [new_team(admitter, FUNDS) for _ in range(8)]
        _submit_orphans(admitter, teams, 4)
        # A replica whose calls to fal hang claims the teams; it dies mid-pass.
        doomed = {**FAST, "reconcile_lease": 3, "upstream_timeout": 60}
        with (
            redis.Redis.from_url(own_redis.url) as store,
            SilentServer() as hanging,
            Gateway(own_redis.url, hanging.url, doomed) as victim,
        ):
            settled_when(lambda: _claimed(store) == len(teams))
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
        with ExitStack() as stack:
            for _ in range(2):
                stack.enter_context(Gateway(own_redis.url, fast_emulator.url, FAST))
            settled_when(lambda: all(_settled_once(admitter, t, 4) for t in teams))
            [row] = usage(admitter, team_id=teams[0], group_by="team_id")
            assert (row["requests"], row["cost_micros"]) == (4, 4 * COST)


def test_a_stopped_replica_hands_its_claims_back(
    own_redis: RedisServer, fast_emulator: Emulator
) -> None:
    with (
        Gateway(own_redis.url, fast_emulator.url, ADMITTER) as admitter,
        redis.Redis.from_url(own_redis.url, decode_responses=True) as store,
    ):
        teams = [new_team(admitter, FUNDS) for _ in range(3)]
        _submit_orphans(admitter, teams, 1)
        with SilentServer() as hanging:
            stuck = Gateway(own_redis.url, hanging.url, {**FAST, "upstream_timeout": 60})
            with stuck:
                settled_when(lambda: _claimed(store) == len(teams))
            # Stopped (SIGTERM) in the middle of a pass, within the fixture's 10 s.
            assert stuck.process is not None
            assert stuck.process.returncode == 0
        assert _claimed(store) == 0
        assert _due(store) == set(teams)


def test_the_audit_reschedules_a_team_missing_from_the_schedule(
    own_redis: RedisServer, fast_emulator: Emulator
) -> None:
    with (
        Gateway(own_redis.url, fast_emulator.url, ADMITTER) as admitter,
        redis.Redis.from_url(own_redis.url) as store,
    ):
        team = new_team(admitter, FUNDS)
        _submit_orphans(admitter, [team], 2)
        # As if the admitting process died before scheduling (or the data predates it), and the
        # last audit (the admitter's, at its start) is long over.
        store.zrem(redis_keys.reconcile_due(redis_keys.shard_of(team)), team)
        store.delete(redis_keys.RECONCILE_AUDIT)
        with Gateway(own_redis.url, fast_emulator.url, FAST):
            settled_when(lambda: _settled_once(admitter, team, 2))
        assert store.ttl(redis_keys.RECONCILE_AUDIT) > 3000  # the next audit in an hour
