"""The reconciler's schedule driven directly: admission adds the team, ``claim.lua`` hands each
due team to one pass, ``release.lua`` puts it back. On a Redis of their own: claims take every
due team of a Redis, whoever scheduled it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from gateway.store import redis_keys
from gateway.store.scripts import Scripts
from tests.servers import RedisServer
from tests.store.test_scripts import METRICS, RETENTION, Scene, run

DUE, CLAIMED = redis_keys.RECONCILE_DUE, redis_keys.RECONCILE_CLAIMED


@pytest.fixture
def schedule_redis() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


async def _scores(s: Scene, name: str) -> dict[str, float]:
    reply = await s.store.call("ZRANGE", name, 0, -1, "WITHSCORES")
    return {team: float(score) for team, score in zip(reply[::2], reply[1::2], strict=True)}


def test_admission_puts_its_team_on_the_schedule_at_its_first_admission(
    schedule_redis: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        before = time.time()
        await s.admit(1_000, "r1")
        first = (await _scores(s, DUE))[s.team]
        assert before - 1 <= first <= time.time() + 1
        await s.admit(1_000, "r2")
        assert await _scores(s, DUE) == {s.team: first}  # the earliest look wins

    run(schedule_redis, body)


def test_each_due_team_is_claimed_by_one_pass_only(schedule_redis: RedisServer) -> None:
    async def body(s: Scene) -> None:
        now = time.time()
        due = {f"due-{n}" for n in range(30)}
        await s.store.execute([("ZADD", DUE, now - 100, team) for team in due])
        await s.store.call("ZADD", DUE, now + 1000, "later")
        other = Scripts(s.store, METRICS, RETENTION)
        claims = await asyncio.gather(
            s.scripts.claim_due_teams(60, 30, 20), other.claim_due_teams(60, 30, 20)
        )
        first, second = (set(teams) for _, teams in claims)
        assert first.isdisjoint(second)
        assert first | second == due
        assert set(await _scores(s, DUE)) == {"later"}
        assert set(await _scores(s, CLAIMED)) == due
        assert (await s.scripts.claim_due_teams(60, 30, 20))[1] == []

    run(schedule_redis, body)


def test_claims_of_a_pass_that_died_are_due_again_when_they_lapse(
    schedule_redis: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.store.call("ZADD", DUE, time.time() - 100, "t1")
        assert (await s.scripts.claim_due_teams(60, 0.3, 10))[1] == ["t1"]
        assert (await s.scripts.claim_due_teams(60, 0.3, 10))[1] == []  # held
        await asyncio.sleep(0.4)
        assert (await s.scripts.claim_due_teams(60, 0.3, 10))[1] == ["t1"]

    run(schedule_redis, body)


def test_release_reschedules_and_keeps_an_admission_made_during_the_pass(
    schedule_redis: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        await s.store.execute([("ZADD", DUE, time.time() - 100, t) for t in (s.team, "a", "b")])
        now, claimed = await s.scripts.claim_due_teams(60, 30, 10)
        assert sorted(claimed) == sorted([s.team, "a", "b"])
        await s.admit(1_000, "r1")  # while the pass looks at the team
        admitted_at = (await _scores(s, DUE))[s.team]
        # The pass read the open set before the admission: it thinks nothing is left.
        await s.scripts.release_teams({s.team: None, "a": None, "b": now + 500})
        assert await _scores(s, CLAIMED) == {}
        assert await _scores(s, DUE) == {s.team: admitted_at, "b": pytest.approx(now + 500)}

    run(schedule_redis, body)
