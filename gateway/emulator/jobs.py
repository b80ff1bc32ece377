"""Jobs and their queue: the state machine IN_QUEUE → IN_PROGRESS → COMPLETED.

fal never reports a failed or cancelled state: every job ends COMPLETED and the outcome (output
or error) is what the result fetch answers (``fal-protocol.md`` §3).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import enum
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.catalog import Endpoint, ImageEditInput


class JobState(enum.StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class Outcome:
    """What the result fetch answers: the model's output, or the error fal would return."""

    status_code: int
    body: dict[str, Any]
    error_type: str | None = None
    inference_time: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status_code < 400


@dataclass(eq=False)
class Job:
    id: str
    endpoint: Endpoint
    request: ImageEditInput
    base_url: str
    """Where the caller reached the emulator; every URL returned for this job starts with it."""
    account: str = ""
    """Fingerprint of the key that submitted it: only that key can see it, and its runs count
    against that key's concurrency."""
    webhook_url: str | None = None
    start_deadline: float | None = None
    """Monotonic time after which a job still queued fails (``X-Fal-Request-Timeout``)."""
    eligible_at: float = 0.0
    """Monotonic time before which no runner takes the job (the queue delay)."""
    state: JobState = JobState.IN_QUEUE
    logs: list[dict[str, Any]] = field(default_factory=list)
    outcome: Outcome | None = None
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 0
    seq: int = 0
    """Set when the job joins the queue, increasing, so the queue is ordered by it."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def app_id(self) -> str:
        return self.endpoint.app_id

    def log(self, message: str, level: str = "INFO") -> None:
        self.logs.append(
            {
                "message": message,
                "level": level,
                "source": "USER",
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )
        self.touch()

    def start(self) -> None:
        self.state = JobState.IN_PROGRESS
        self.touch()

    def complete(self, outcome: Outcome) -> None:
        self.state = JobState.COMPLETED
        self.outcome = outcome
        self.touch()

    def touch(self) -> None:
        """Record a change and wake everyone waiting for one."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed_since(self, version: int) -> None:
        """Return once the job has changed after ``version``."""
        while self.version == version:
            await self._changed.wait()


class JobQueue:
    """Jobs waiting for a runner, first in first out; positions are real.

    With a per-key limit (``limit()`` > 0), a runner passes over the jobs of a key that has that
    many running and takes the first job of another key, as fal's per-account concurrency limit
    holds an account's excess requests IN_QUEUE without holding up other accounts.
    """

    def __init__(self, limit: Callable[[], int] = lambda: 0) -> None:
        self._pending: deque[Job] = deque()
        self._wakeup = asyncio.Condition()
        self._joined = itertools.count(1)
        self._limit = limit
        self._running: Counter[str] = Counter()

    def position(self, job: Job) -> int:
        """How many jobs are ahead of ``job`` (0: next). Jobs wait in submission order, so a
        binary search finds it (a long queue would make a scan the emulator's main cost)."""
        index = bisect.bisect_left(self._pending, job.seq, key=lambda pending: pending.seq)
        if index < len(self._pending) and self._pending[index] is job:
            return index
        return 0

    async def put(self, job: Job) -> None:
        async with self._wakeup:
            job.seq = next(self._joined)
            self._pending.append(job)
            self._wakeup.notify_all()

    async def remove(self, job: Job) -> bool:
        """Take a job out before any runner got it; False when it had already left."""
        async with self._wakeup:
            try:
                self._pending.remove(job)
            except ValueError:
                return False
            return True

    async def take(self) -> Job:
        """The next job whose key has a free slot, once its queue delay has passed; call
        ``release`` when it is done."""
        async with self._wakeup:
            while True:
                index, wait = self._next()
                if index is not None:
                    job = self._pending[index]
                    del self._pending[index]
                    self._running[job.account] += 1
                    # Other runners may be waiting without a timeout: let them see what is left.
                    self._wakeup.notify_all()
                    return job
                if wait is None:
                    await self._wakeup.wait()
                    continue
                # Not wait_for: cancelled at shutdown it can leave the lock released under
                # the condition (CPython 3.11, "Lock is not acquired").
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()

    def _next(self) -> tuple[int | None, float | None]:
        """The index of the job to run now, else how long until one may be (None: no such job
        until something changes)."""
        limit = self._limit()
        for index, job in enumerate(self._pending):
            if limit and self._running[job.account] >= limit:
                continue
            wait = job.eligible_at - time.monotonic()
            return (index, None) if wait <= 0 else (None, wait)
        return None, None

    async def release(self, job: Job) -> None:
        """A job ``take`` gave out is done: its key's slot is free again."""
        async with self._wakeup:
            self._running[job.account] -= 1
            if self._running[job.account] <= 0:
                del self._running[job.account]
            self._wakeup.notify_all()

    async def wake(self) -> None:
        """Make waiting runners look again (the per-key limit changed)."""
        async with self._wakeup:
            self._wakeup.notify_all()
