"""How many deliveries one process attempts at once: at most ``total``, and at most
``per_target`` to one target (the scheme, host and port of the URL), so a receiver that is slow
or hangs holds up only its own deliveries.

A delivery whose target is busy waits for it without counting against ``total``: the worker reads
more of the queue meanwhile. At most ``backlog`` deliveries wait so; beyond that ``full`` says to
leave one for later (it stays pending and is claimed again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx


def target_of(url: str) -> str:
    """The target a delivery to ``url`` counts against: scheme, host and port."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host}:{port}"


@dataclass
class _Gate:
    slots: asyncio.Semaphore
    users: int = 0


class Slots:
    def __init__(self, total: int, per_target: int, backlog: int) -> None:
        self.total = total
        self._per_target = per_target
        self._backlog = backlog
        self._attempts = asyncio.Semaphore(total)
        self._gates: dict[str, _Gate] = {}
        self._active = 0
        """Deliveries taken and not waiting for their target."""
        self._waiting = 0
        self._freed = asyncio.Event()

    async def room(self, wait: float) -> int:
        """How many more deliveries may be taken, waiting up to ``wait`` seconds for one to
        finish when none may (0 if none did)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while self._active >= self.total:
                    self._freed.clear()
                    await self._freed.wait()
        return max(0, self.total - self._active)

    def take(self) -> None:
        """A delivery is taken from the queue (``release`` when finished with)."""
        self._active += 1

    def release(self) -> None:
        self._active -= 1
        self._freed.set()

    def full(self, target: str) -> bool:
        """``target`` is busy and as many deliveries as allowed already wait."""
        gate = self._gates.get(target)
        return gate is not None and gate.slots.locked() and self._waiting >= self._backlog

    @asynccontextmanager
    async def attempt(self, target: str) -> AsyncIterator[None]:
        """Hold one of the target's slots and one of the ``total`` (a taken delivery)."""
        gate = self._gates.get(target)
        if gate is None:
            gate = self._gates[target] = _Gate(asyncio.Semaphore(self._per_target))
        gate.users += 1
        waiting = gate.slots.locked()
        if waiting:
            self._waiting += 1
            self.release()
        try:
            async with gate.slots:
                if waiting:
                    waiting = False
                    self._waiting -= 1
                    self.take()
                async with self._attempts:
                    yield
        finally:
            if waiting:  # cancelled while waiting: taken again, for the caller's release
                self._waiting -= 1
                self.take()
            gate.users -= 1
            if not gate.users:
                del self._gates[target]
