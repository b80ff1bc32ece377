"""The Lua scripts, loaded from package data and registered once per Redis client.

Every key a script touches shares its team's hash tag, so the scripts run on Redis Cluster too.
They run with EVALSHA on the process's multiplexed connection, loaded when Redis does not know
them yet.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.exceptions import ResponseError

from gateway.store.multiplexed import MultiplexedRedis
from gateway.store.pool import store_errors
from gateway.telemetry.metrics import Metrics

SCRIPTS = ("admit", "settle", "credit", "enqueue", "complete")
"""The scripts, each ``lua/<name>.lua`` in this package."""


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


class Scripts:
    """The scripts, run over the multiplexed connection; ``run`` times each call and maps Redis
    failures to 503."""

    def __init__(self, store: MultiplexedRedis, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._sources = {name: _source(name) for name in SCRIPTS}
        self._shas = {
            name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for name, source in self._sources.items()
        }

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        started = time.perf_counter()
        command = ("EVALSHA", self._shas[name], len(keys), *keys, *args)
        try:
            async with store_errors():
                try:
                    result = await self._store.call(*command)
                except ResponseError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                    # Redis restarted or was flushed: load the script and run it once more.
                    await self._store.call("SCRIPT", "LOAD", self._sources[name])
                    result = await self._store.call(*command)
        finally:
            self._metrics.redis_seconds.labels(name).observe(time.perf_counter() - started)
        return list(result)
