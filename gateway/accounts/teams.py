"""Teams: the policy every key of the team is held to (balances and limits come with quotas)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from gateway.accounts import redis_keys
from gateway.accounts.keys import policy_field, policy_from
from gateway.store import store_errors
from gateway.submission.policy import Policy


class TeamStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def policy(self, team_id: str) -> Policy:
        async with store_errors():
            stored = await self._redis.hget(redis_keys.team_record(team_id), "policy")
        return policy_from(None if stored is None else str(stored))

    async def set_policy(self, team_id: str, policy: Policy) -> None:
        async with store_errors():
            await self._redis.hset(redis_keys.team_record(team_id), "policy", policy_field(policy))

    async def public(self, team_id: str) -> dict[str, Any]:
        """The team as the admin API shows it."""
        return {
            "id": team_id,
            "policy": (await self.policy(team_id)).model_dump(exclude_defaults=True),
        }
