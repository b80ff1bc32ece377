"""The gateway's background loops, supervised: each survives any error, says when it last
finished a pass, and stops within a bounded time.

A loop is a pass of work done again and again (``Loop.step``). A pass that raises is logged
(a warning when Redis or fal cannot serve for now, an error with its traceback otherwise) and
retried with exponential backoff; nothing but cancellation ends a loop. Every pass that finishes
sets ``gateway_background_last_success_timestamp_seconds``; a loop with no pass finished for
``stall_after`` seconds is stalled, and ``/readyz`` answers 503 naming it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from gateway.errors import ServiceUnavailable, StoreUnavailable, UpstreamError
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
OPERATIONAL = (StoreUnavailable, UpstreamError, ServiceUnavailable, RedisError, OSError)
"""Failures that say a peer cannot serve for now, not that the gateway has a bug."""


@dataclass(frozen=True)
class Loop:
    """One kind of background work."""

    name: str
    step: Callable[[], Awaitable[None]]
    """One pass; raises to say it failed."""
    interval: float
    """Pause after a pass that succeeded (0: the pass itself waits, e.g. a blocking read)."""
    stall_after: float
    """Seconds without a finished pass after which the loop counts as stalled."""


class Supervisor:
    """Runs loops as tasks of the app's lifespan; ``stop`` cancels them and waits a bounded
    time."""

    def __init__(self, loops: list[Loop], metrics: Metrics) -> None:
        self._loops = loops
        self._metrics = metrics
        self._last_success: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        started = time.monotonic()
        for loop in self._loops:
            self._last_success[loop.name] = started  # a fresh loop gets its full allowance
            self._metrics.background_last_success.labels(loop.name).set(time.time())
            self._tasks.append(asyncio.create_task(self._run(loop), name=f"loop:{loop.name}"))

    async def stop(self, grace: float) -> None:
        """Cancel every loop; give them ``grace`` seconds to unwind, then leave the rest."""
        for task in self._tasks:
            task.cancel()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            logger.warning("background loop %s did not stop within %.0f s", task.get_name(), grace)

    def stalled(self) -> list[str]:
        """Names of the loops with no pass finished within their ``stall_after``."""
        now = time.monotonic()
        return [
            loop.name
            for loop in self._loops
            if now - self._last_success.get(loop.name, now) > loop.stall_after
        ]

    async def _run(self, loop: Loop) -> None:
        failures = 0
        while True:
            try:
                await loop.step()
            except Exception as exc:  # noqa: BLE001 - a loop must outlive any failure
                failures += 1
                self._metrics.background_failures.labels(loop.name).inc()
                if _redis_failure(exc):
                    self._metrics.redis_errors.labels(loop.name).inc()
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 16))
                _log_failure(loop.name, exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._last_success[loop.name] = time.monotonic()
            self._metrics.background_last_success.labels(loop.name).set(time.time())
            await asyncio.sleep(loop.interval)  # even 0 yields: a pass that never waits
            # would otherwise starve everything else


def _log_failure(name: str, exc: Exception, delay: float) -> None:
    """Redis or fal unable to serve is an operating condition (a warning); anything else is a
    bug, logged with its traceback."""
    if _operational(exc):
        while isinstance(exc, ExceptionGroup):
            exc = exc.exceptions[0]  # a task group's failures share one cause, as a rule
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        logger.warning("background loop %s failed, retrying in %.1f s: %s", name, delay, detail)
    else:
        logger.error("background loop %s failed, retrying in %.1f s", name, delay, exc_info=exc)


def _redis_failure(exc: Exception) -> bool:
    """``exc`` says Redis could not serve (alone, or first in a task group's failures)."""
    while isinstance(exc, ExceptionGroup):
        exc = exc.exceptions[0]
    return isinstance(exc, StoreUnavailable | RedisError)


def _operational(exc: Exception) -> bool:
    """``exc`` is one of ``OPERATIONAL``, or a group of nothing else (from a task group)."""
    if isinstance(exc, ExceptionGroup):
        return exc.split(OPERATIONAL)[1] is None
    return isinstance(exc, OPERATIONAL)
