"""The Lua scripts, loaded from package data and registered once per Redis client.

Every key a script touches shares its team's hash tag, so the scripts run on Redis Cluster too.
redis-py runs them with EVALSHA (loading them when Redis does not know them yet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.metrics import Metrics
from gateway.store import store_errors

SCRIPTS = {
    "admit": "gateway.limits",
    "settle": "gateway.limits",
    "credit": "gateway.limits",
    "enqueue": "gateway.relay",
    "complete": "gateway.accounts",
}
"""Each script and the package whose data holds its ``<name>.lua``."""


def _source(name: str) -> str:
    return resources.files(SCRIPTS[name]).joinpath(f"{name}.lua").read_text()


class Scripts:
    """The registered scripts; ``run`` times each call and maps Redis failures to 503."""

    def __init__(self, redis: Redis, metrics: Metrics) -> None:
        self._metrics = metrics
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(_source(name)) for name in SCRIPTS
        }

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        started = time.perf_counter()
        try:
            async with store_errors():
                result = await self._scripts[name](keys=list(keys), args=list(args))
        finally:
            self._metrics.redis_seconds.labels(name).observe(time.perf_counter() - started)
        return list(result)
