"""The delivery worker's bounds, driven directly: per target, in total, and the backlog."""

from __future__ import annotations

import asyncio

from gateway.relay.slots import Slots, target_of


def test_targets_are_scheme_host_and_port() -> None:
    assert target_of("https://Hooks.Example.com/a?b=1") == "https://hooks.example.com:443"
    assert target_of("http://hooks.example.com:8080/a") == "http://hooks.example.com:8080"
    assert target_of("not a url") != target_of("http://hooks.example.com/")


async def _hold(slots: Slots, target: str, release: asyncio.Event, log: list[str]) -> None:
    slots.take()
    try:
        async with slots.attempt(target):
            log.append(target)
            await release.wait()
    finally:
        slots.release()


def test_a_busy_target_waits_without_holding_up_others() -> None:
    async def scenario() -> None:
        slots = Slots(total=3, per_target=1, backlog=1)
        release = asyncio.Event()
        log: list[str] = []
        tasks = [asyncio.create_task(_hold(slots, "slow", release, log)) for _ in range(2)]
        await asyncio.sleep(0)
        # one attempt to "slow", the other waits for it and leaves room in the total
        assert log == ["slow"]
        assert await slots.room(60) == 2
        assert slots.full("slow")  # the backlog of one is used up
        assert not slots.full("fast")
        tasks.append(asyncio.create_task(_hold(slots, "fast", release, log)))
        tasks.append(asyncio.create_task(_hold(slots, "other", release, log)))
        await asyncio.sleep(0)
        assert log == ["slow", "fast", "other"]
        release.set()
        await asyncio.gather(*tasks)
        assert log == ["slow", "fast", "other", "slow"]
        assert await slots.room(60) == 3
        assert not slots.full("slow")

    asyncio.run(scenario())


def test_attempts_never_exceed_the_total() -> None:
    async def scenario() -> None:
        slots = Slots(total=2, per_target=5, backlog=10)
        release = asyncio.Event()
        log: list[str] = []
        tasks = [asyncio.create_task(_hold(slots, f"t{i}", release, log)) for i in range(3)]
        await asyncio.sleep(0)
        assert len(log) == 2
        room = asyncio.create_task(slots.room(60))
        await asyncio.sleep(0)
        assert not room.done()  # the reader waits too
        release.set()
        await asyncio.gather(*tasks)
        assert len(log) == 3
        assert await room == 2

    asyncio.run(scenario())


def test_a_delivery_cancelled_while_waiting_gives_its_place_back() -> None:
    async def scenario() -> None:
        slots = Slots(total=2, per_target=1, backlog=5)
        release = asyncio.Event()
        log: list[str] = []
        first = asyncio.create_task(_hold(slots, "slow", release, log))
        waiting = asyncio.create_task(_hold(slots, "slow", release, log))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert await slots.room(60) == 1
        release.set()
        await first
        assert await slots.room(60) == 2
        assert log == ["slow"]

    asyncio.run(scenario())


def test_room_waits_a_bounded_time_when_there_is_none() -> None:
    async def scenario() -> None:
        slots = Slots(total=1, per_target=1, backlog=0)
        slots.take()
        assert await slots.room(0.05) == 0  # none freed: the caller gets on with other work
        slots.release()
        assert await slots.room(0.05) == 1

    asyncio.run(scenario())
