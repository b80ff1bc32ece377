"""Failed sign-ins are limited per client address (across replicas, in Redis), so neither the
admin token nor a key can be guessed through the sign-in forms; signing in right costs
nothing."""

from __future__ import annotations

from gateway.store import redis_keys
from gateway.store.multiplexed import Store
from gateway.store.pool import store_errors

FAILURES = 10
WINDOW_SECONDS = 600


async def blocked(store: Store, role: str, client: str) -> bool:
    """Whether ``client`` failed ``FAILURES`` times within the window."""
    async with store_errors():
        count = await store.call("GET", redis_keys.signin_failures(role, client))
    return int(count or 0) >= FAILURES


async def failed(store: Store, role: str, client: str) -> None:
    """Count a failed sign-in (the window starts with the first)."""
    name = redis_keys.signin_failures(role, client)
    async with store_errors():
        await store.execute([("SET", name, 0, "EX", WINDOW_SECONDS, "NX"), ("INCR", name)])
