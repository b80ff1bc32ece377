"""Sign-in attempts are limited per client address (across replicas, in Redis), so neither the
admin token nor a key can be guessed through the sign-in forms."""

from __future__ import annotations

from gateway.store import redis_keys
from gateway.store.multiplexed import Store
from gateway.store.pool import store_errors

ATTEMPTS = 10
WINDOW_SECONDS = 600


async def attempt_allowed(store: Store, role: str, client: str) -> bool:
    """Count one attempt; False once ``ATTEMPTS`` were made in the window."""
    name = redis_keys.signin_attempts(role, client)
    async with store_errors():
        _, count = await store.execute(
            [("SET", name, 0, "EX", WINDOW_SECONDS, "NX"), ("INCR", name)]
        )
    return int(count) <= ATTEMPTS
