"""The reconciler's schedule driven directly: admission adds the team to its shard's, ``claim.lua``
hands each due team of a shard to one pass, ``release.lua`` puts it back. On a Redis of their
own: claims take every due team of a Redis, whoever scheduled it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from gateway.store import redis_keys
from gateway.store.scripts import Scripts
from tests.servers import RedisServer
from tests.store.test_scripts import METRICS, RETENTION, Scene, run

SHARD = 3
DUE, CLAIMED = redis_keys.reconcile_due(SHARD), redis_keys.reconcile_claimed(SHARD)


def teams_of_shard(count: int, prefix: str, shard: int = SHARD) -> list[str]:
    """``count`` team ids that map to ``shard``."""
    names = (f"{prefix}-{n}" for n in range(10_000))
    return [t for t in names if redis_keys.shard_of(t) == shard][:count]


@pytest.fixture
def schedule_redis() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


async def _claim(scripts: Scripts, shard: int, lease: float, limit: int) -> tuple[float, list[str]]:
    """Claim the shard's due teams (``reconcile_after`` 60 s)."""
    now, claimed = await scripts.claim_due_teams([shard], 60, lease, limit)
    return now, claimed[shard]


async def _scores(s: Scene, name: str) -> dict[str, float]:
    reply = await s.store.call("ZRANGE", name, 0, -1, "WITHSCORES")
    return {team: float(score) for team, score in zip(reply[::2], reply[1::2], strict=True)}


def test_admission_puts_its_team_on_the_schedule_at_its_first_admission(
    schedule_redis: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        due = redis_keys.reconcile_due(redis_keys.shard_of(s.team))
        before = time.time()
        await s.admit(1_000, "r1")
        first = (await _scores(s, due))[s.team]
        assert before - 1 <= first <= time.time() + 1
        await s.admit(1_000, "r2")
        assert await _scores(s, due) == {s.team: first}  # the earliest look wins
        others = {redis_keys.reconcile_due(n) for n in range(redis_keys.SHARDS)} - {due}
        assert [await s.store.call("ZCARD", name) for name in others] == [0] * 7  # its shard's

    run(schedule_redis, body)


def test_each_due_team_is_claimed_by_one_pass_only(schedule_redis: RedisServer) -> None:
    async def body(s: Scene) -> None:
        now = time.time()
        due = set(teams_of_shard(30, "due"))
        (elsewhere,) = teams_of_shard(1, "elsewhere", SHARD + 1)
        await s.store.execute([("ZADD", DUE, now - 100, team) for team in due])
        await s.store.call("ZADD", DUE, now + 1000, "later")
        await s.store.call("ZADD", redis_keys.reconcile_due(SHARD + 1), now - 100, elsewhere)
        other = Scripts(s.store, METRICS, RETENTION)
        claims = await asyncio.gather(
            _claim(s.scripts, SHARD, 30, 20), _claim(other, SHARD, 30, 20)
        )
        first, second = (set(teams) for _, teams in claims)
        assert first.isdisjoint(second)
        assert first | second == due
        assert set(await _scores(s, DUE)) == {"later"}
        assert set(await _scores(s, CLAIMED)) == due
        assert (await _claim(s.scripts, SHARD, 30, 20))[1] == []
        assert (await _claim(s.scripts, SHARD + 1, 30, 20))[1] == [elsewhere]

    run(schedule_redis, body)


def test_claims_of_a_pass_that_died_are_due_again_when_they_lapse(
    schedule_redis: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        (team,) = teams_of_shard(1, "t")
        await s.store.call("ZADD", DUE, time.time() - 100, team)
        assert (await _claim(s.scripts, SHARD, 0.3, 10))[1] == [team]
        assert (await _claim(s.scripts, SHARD, 0.3, 10))[1] == []  # held
        await asyncio.sleep(0.4)
        assert (await _claim(s.scripts, SHARD, 0.3, 10))[1] == [team]

    run(schedule_redis, body)


def test_release_reschedules_and_keeps_an_admission_made_during_the_pass(
    schedule_redis: RedisServer,
) -> None:
    async def body(s: Scene) -> None:
        shard = redis_keys.shard_of(s.team)
        due, claimed_set = redis_keys.reconcile_due(shard), redis_keys.reconcile_claimed(shard)
        a, b = teams_of_shard(2, "ab", shard)
        await s.store.execute([("ZADD", due, time.time() - 100, t) for t in (s.team, a, b)])
        now, claimed = await _claim(s.scripts, shard, 30, 10)
        assert sorted(claimed) == sorted([s.team, a, b])
        await s.admit(1_000, "r1")  # while the pass looks at the team
        admitted_at = (await _scores(s, due))[s.team]
        # The pass read the open set before the admission: it thinks nothing is left.
        await s.scripts.release_teams({s.team: None, a: None, b: now + 500})
        assert await _scores(s, claimed_set) == {}
        assert await _scores(s, due) == {s.team: admitted_at, b: pytest.approx(now + 500)}

    run(schedule_redis, body)
