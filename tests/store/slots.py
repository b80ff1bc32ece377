"""What Redis Cluster requires of scripts, checked on one Redis: a store that refuses a script
naming keys of two slots (``CROSSSLOT`` on a cluster), and a ``MONITOR`` that shows a script
touching a key it was not passed (a cluster routes a script by the keys it is passed)."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from redis.crc import key_slot

from gateway.store.multiplexed import Command, MultiplexedRedis
from tests.servers import RedisServer


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

    async def execute(
        self, commands: Sequence[Command], *, raise_on_error: bool = True
    ) -> list[Any]:
        for command in commands:
            if str(command[0]).upper() == "EVALSHA":
                if len(slots := script_slots(command)) != 1:
                    raise CrossSlot(f"script keys in slots {sorted(slots)}: {command[3:]}")
                self.scripts_run.add(str(command[1]))
        return await super().execute(commands, raise_on_error=raise_on_error)


_END = b"monitor-end"
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class ScriptRun:
    """One script run as ``MONITOR`` saw it: the keys it was passed, the commands it ran."""

    keys: list[str]
    commands: list[list[str]] = field(default_factory=list)

    def undeclared(self) -> list[list[str]]:
        """Commands of the run that touched a key it was not passed."""
        return [c for c in self.commands if not set(_keys_of(c)) <= set(self.keys)]


def _keys_of(command: list[str]) -> list[str]:
    name = command[0].upper()
    if name == "TIME":
        return []
    return command[1:] if name == "DEL" else command[1:2]


class Monitor:
    """Every script run on a Redis while it is open (``MONITOR`` on a socket of its own)."""

    def __init__(self, server: RedisServer) -> None:
        self._port = server.port
        self._sock = socket.create_connection(("127.0.0.1", server.port))
        self._seen = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> Self:
        self._sock.sendall(b"MONITOR\r\n")
        while not self._seen.startswith(b"+OK\r\n"):
            self._seen += self._sock.recv(64)
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # A command of its own, seen last: everything before it has been read.
        with socket.create_connection(("127.0.0.1", self._port)) as other:
            other.sendall(b"ECHO " + _END + b"\r\n")
            other.recv(64)
        self._reader.join(timeout=5)
        self._sock.close()

    def _read(self) -> None:
        while _END not in self._seen and (data := self._sock.recv(65536)):
            self._seen += data

    def script_runs(self) -> list[ScriptRun]:
        runs: list[ScriptRun] = []
        for line in self._seen.decode(errors="replace").splitlines():
            words = [w.replace('\\"', '"') for w in _QUOTED.findall(line)]
            if not words:
                continue
            if " lua] " in line and runs:
                runs[-1].commands.append(words)
            elif words[0].upper() in ("EVALSHA", "EVAL"):
                runs.append(ScriptRun(words[3 : 3 + int(words[2])]))
        return runs
