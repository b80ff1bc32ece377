"""A store that checks, on every batch it sends, that each script names keys of one slot only:
what Redis Cluster requires (``CROSSSLOT`` otherwise), checked on one Redis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.crc import key_slot

from gateway.store.multiplexed import Command, MultiplexedRedis


class CrossSlot(AssertionError):
    pass


def script_slots(command: Command) -> set[int]:
    """The slots of the keys an ``EVALSHA`` names."""
    count = int(command[2])
    return {key_slot(str(key).encode()) for key in command[3 : 3 + count]}


class SlotCheckedStore(MultiplexedRedis):
    """``MultiplexedRedis`` that refuses a script naming keys of two slots (or none), and
    remembers which scripts (by SHA) ran."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url, timeout)
        self.scripts_run: set[str] = set()

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        for command in commands:
            if str(command[0]).upper() == "EVALSHA":
                if len(slots := script_slots(command)) != 1:
                    raise CrossSlot(f"script keys in slots {sorted(slots)}: {command[3:]}")
                self.scripts_run.add(str(command[1]))
        return await super().execute(commands)
