"""``pick_account.lua`` and its companions on a real Redis: the choice is weighted among usable
accounts with a free slot, slots are held until released (or they lapse), a hard limit
refuses, a soft one sends to the least loaded, and health keeps accounts out."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from gateway.store import redis_keys
from gateway.store.account_scripts import AccountScripts, Chosen, Unavailable
from tests.servers import RedisServer
from tests.store.test_scripts import Scene, run

Body = Callable[[AccountScripts, Scene], Awaitable[None]]


def _pool(body: Body, slot_ttl: float = 60) -> None:
    """``body`` on a Redis of its own: the pool is global to a Redis, and the session's
    gateways use theirs."""

    async def scene(s: Scene) -> None:
        await body(AccountScripts(s.scripts, slot_ttl, assumed_duration=30), s)

    with RedisServer() as own:
        run(own, scene)


async def _add(pool: AccountScripts, name: str, **fields: object) -> None:
    account = {"key": f"sealed-{name}", "fingerprint": f"fp-{name}", "weight": 1}
    account |= {"max_concurrent": 0, "hard_limit": False, "enabled": True, **fields}
    assert (await pool.edit("create", name, json.dumps(account))).outcome == "created"


async def _chosen(pool: AccountScripts, reservation: str = "", *exclude: str) -> str:
    chosen = await pool.pick(reservation, exclude)
    assert isinstance(chosen, Chosen), chosen
    return chosen.name


def test_choice_is_weighted_among_usable_accounts() -> None:
    async def body(pool: AccountScripts, s: Scene) -> None:
        await _add(pool, "heavy", weight=3)
        await _add(pool, "light", weight=1)
        await _add(pool, "drained", weight=0)
        await _add(pool, "off", enabled=False)
        await _add(pool, "locked")
        assert await pool.health("refused", "locked", "fp-locked", "User is locked")
        picks = Counter([await _chosen(pool) for _ in range(400)])
        assert set(picks) == {"heavy", "light"}
        assert 240 <= picks["heavy"] <= 360, picks
        assert {await _chosen(pool, "", "heavy") for _ in range(20)} == {"light"}

    _pool(body)


def test_hard_limits_refuse_with_a_wait_and_a_released_slot_is_free_again() -> None:
    async def body(pool: AccountScripts, s: Scene) -> None:
        await _add(pool, "a", max_concurrent=2, hard_limit=True)
        await _add(pool, "b", max_concurrent=1, hard_limit=True)
        held = Counter([await _chosen(pool, f"r{n}") for n in range(3)])
        assert held == {"a": 2, "b": 1}
        full = await pool.pick("r3", ())
        assert isinstance(full, Unavailable)
        assert full.reason == "full"
        # Nothing measured yet: 30 s assumed per job, a slot every 30 / 2 s on "a".
        assert full.retry_after_ms == 15_000
        a_jobs = [r for r in ("r0", "r1", "r2") if await pool.release("a", r)]
        assert len(a_jobs) == 2
        assert not await pool.release("a", a_jobs[0])  # once only
        assert await _chosen(pool, "r4") == "a"
        counts = await s.store.call("HGETALL", redis_keys.UPSTREAM_IN_FLIGHT)
        assert dict(zip(counts[::2], counts[1::2], strict=True)) == {"a": "1", "b": "1"}
        # Jobs that ended at once: the wait shrinks with the measured duration.
        await _chosen(pool, "r5")
        full = await pool.pick("r6", ())
        assert isinstance(full, Unavailable)
        assert full.retry_after_ms < 15_000

    _pool(body)


def test_soft_limits_send_to_the_least_loaded_account() -> None:
    async def body(pool: AccountScripts, s: Scene) -> None:
        await _add(pool, "small", max_concurrent=1)
        await _add(pool, "big", max_concurrent=4, weight=2)
        await _add(pool, "strict", max_concurrent=1, hard_limit=True)
        first = Counter([await _chosen(pool, f"r{n}") for n in range(6)])
        assert first == {"small": 1, "big": 4, "strict": 1}
        # All full: "big" at 4/4 and "small" at 1/1 are equally loaded, heavier first.
        assert await _chosen(pool, "r6") == "big"
        assert await _chosen(pool, "r7") == "small"  # 1/1 < 5/4

    _pool(body)


def test_cooling_and_refused_accounts_are_skipped_until_restored() -> None:
    async def body(pool: AccountScripts, s: Scene) -> None:
        await _add(pool, "a")
        until = time.time() + 30
        assert await pool.health("cooling", "a", "fp-a", f"{until:.3f}")
        assert not await pool.health("cooling", "a", "fp-a", f"{until - 10:.3f}")  # no shorter
        none = await pool.pick("", ())
        assert isinstance(none, Unavailable)
        assert none.reason == "none"
        assert 28_000 < none.retry_after_ms <= 30_001  # ms rounded up
        # A key replaced since fal answered is not judged by that answer.
        assert not await pool.health("refused", "a", "fp-old", "Invalid API key")
        assert await pool.health("refused", "a", "fp-a", "User is locked")
        assert not await pool.health("cooling", "a", "fp-a", f"{until + 60:.3f}")
        none = await pool.pick("", ())
        assert none == Unavailable("none", 0)
        assert await pool.health("restored", "a", "fp-a", "")
        assert await _chosen(pool) == "a"
        # A cooling period that has passed is no obstacle.
        assert await pool.health("cooling", "a", "fp-a", f"{time.time() - 1:.3f}")
        assert await _chosen(pool) == "a"

    _pool(body)


def test_slots_of_jobs_never_seen_ending_lapse() -> None:
    async def body(pool: AccountScripts, s: Scene) -> None:
        await _add(pool, "a", max_concurrent=1, hard_limit=True)
        assert await _chosen(pool, "lost") == "a"
        assert isinstance(await pool.pick("next", ()), Unavailable)
        await asyncio.sleep(1.2)
        assert await _chosen(pool, "next") == "a"
        assert not await pool.release("a", "lost")

    _pool(body, slot_ttl=1)


def test_an_account_with_jobs_in_flight_is_not_deleted() -> None:
    async def body(pool: AccountScripts, s: Scene) -> None:
        await _add(pool, "a")
        assert (await pool.edit("create", "a", "{}")).outcome == "exists"
        await _chosen(pool, "r1")
        busy = await pool.edit("delete", "a")
        assert (busy.outcome, busy.detail) == ("busy", "1")
        assert await pool.release("a", "r1")
        assert (await pool.edit("delete", "a")).outcome == "deleted"
        assert (await pool.edit("update", "a", "{}")).outcome == "missing"

    _pool(body)
