"""Background loops under supervision: they outlive failures, report liveness, stop in time."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.errors import StoreUnavailable
from gateway.telemetry import loops
from gateway.telemetry.loops import Loop, Supervisor
from gateway.telemetry.metrics import Metrics


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "BACKOFF_FIRST", 0.01)


def _sample(metrics: Metrics, name: str, loop: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"loop": loop})


def test_a_loop_outlives_any_failure_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    passes: list[str] = []
    third = asyncio.Event()
    failures = iter([StoreUnavailable("Redis is away"), KeyError("a bug")])

    async def step() -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        passes.append("ok")
        if len(passes) == 3:
            third.set()

    async def scenario() -> None:
        supervisor = Supervisor([Loop("work", step, 0.01, 60)], metrics)
        supervisor.start()
        await asyncio.wait_for(third.wait(), 10)
        await supervisor.stop(1)

    with caplog.at_level(logging.WARNING, logger=loops.__name__):
        asyncio.run(scenario())
    assert _sample(metrics, "gateway_background_failures_total", "work") == 2
    # Only the first failure was Redis's.
    assert metrics.registry.get_sample_value("gateway_redis_errors_total", {"source": "work"}) == 1
    last = _sample(metrics, "gateway_background_last_success_timestamp_seconds", "work")
    assert last is not None
    assert abs(last - time.time()) < 60
    [unavailable, bug] = caplog.records
    # Redis away is an operating condition; anything else a bug, with its traceback.
    assert (unavailable.levelname, unavailable.exc_info) == ("WARNING", None)
    assert "Redis is away" in unavailable.getMessage()
    assert bug.levelname == "ERROR"
    assert bug.exc_info is not None


def test_a_loop_with_no_pass_finished_in_time_is_stalled() -> None:
    hang = asyncio.Event()

    async def stuck() -> None:
        await hang.wait()

    async def fine() -> None:
        pass

    async def scenario() -> None:
        supervisor = Supervisor(
            [Loop("stuck", stuck, 0, 0.2), Loop("fine", fine, 0.01, 0.2)], Metrics()
        )
        supervisor.start()
        assert supervisor.stalled() == []  # a fresh loop gets its full allowance
        await asyncio.sleep(0.4)
        assert supervisor.stalled() == ["stuck"]
        hang.set()
        await asyncio.sleep(0.05)
        assert supervisor.stalled() == []
        await supervisor.stop(1)

    asyncio.run(scenario())


def test_stopping_is_bounded_even_for_a_loop_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            # What a library that swallows cancellation looks like: it goes on for a while.
            await asyncio.shield(asyncio.sleep(10))
            raise

    async def scenario() -> float:
        supervisor = Supervisor([Loop("stubborn", stubborn, 0, 60)], Metrics())
        supervisor.start()
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await supervisor.stop(0.3)
        return time.monotonic() - started

    with caplog.at_level(logging.WARNING, logger=loops.__name__):
        took = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert took < 3
    assert "did not stop within" in caplog.text
