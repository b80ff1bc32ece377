"""Per-process cache of keys' and teams' policies, so a submit needs one Redis round trip.

Pricing needs the policy (its defaults change the request), and admission needs the price, so
the policy must be known before the admission script runs. Entries carry the policy versions they
were read at; the admission script refuses a stale version and the caller re-reads. A refusal
made by the cached policy itself (403, 422) never reaches that script, so it stands only once the
versions, read again, are found current (``checking``): a relaxed policy applies at the next
submit, and an admitted submit still costs one round trip. The cache also keeps the key's secret
hash, so a caller without the right secret learns nothing about a key's policy; revocation and
expiry are checked by the admission script itself. A team's own prices (``team_prices``) are
cached with its policy and under the same version, which changing them moves on too.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gateway.catalog import CATALOG
from gateway.catalog.pricing import Price
from gateway.errors import INVALID_KEY, Forbidden, RequestValidationFailed, Unauthorized
from gateway.policy.model import EffectivePolicy, Policy, effective, policy_field, policy_from
from gateway.store import redis_keys
from gateway.store.multiplexed import Store
from gateway.store.pool import store_errors


class StalePolicy(Exception):
    """The cached policy changed in Redis; re-read it and prepare the request again."""


@dataclass(frozen=True)
class Rules:
    """A key's and its team's policies, with the versions they were read at."""

    key_policy: Policy
    key_version: int
    team_policy: Policy
    team_version: int
    secret_hash: str
    team_prices: Mapping[str, Price] = field(default_factory=dict)
    """The team's own price of an endpoint, by endpoint id, where it has one."""

    def effective(self) -> EffectivePolicy:
        return effective(self.team_policy, self.key_policy)


class PolicyCache:
    def __init__(self, store: Store, size: int = 10_000) -> None:
        self._store = store
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Rules] = OrderedDict()

    async def rules(self, team_id: str, key_id: str, secret_hash: str) -> Rules:
        """The key's and its team's policies; 401 for an unknown key or a wrong secret."""
        name = (team_id, key_id)
        found = self._entries.get(name)
        if found is None:
            found = await self._read(team_id, key_id)
            self._entries[name] = found
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        if not hmac.compare_digest(secret_hash, found.secret_hash):
            raise Unauthorized(INVALID_KEY)
        return found

    def forget(self, team_id: str, key_id: str) -> None:
        self._entries.pop((team_id, key_id), None)

    @asynccontextmanager
    async def checking(self, team_id: str, key_id: str, rules: Rules) -> AsyncIterator[None]:
        """Around the checks made with ``rules``: a 403 or 422 they raise stands if the rules
        are still current; if either policy has changed since, the entry is forgotten and
        ``StalePolicy`` raised instead, so the caller re-reads the rules and checks again."""
        try:
            yield
        except (Forbidden, RequestValidationFailed) as refusal:
            if await self._versions(team_id, key_id) == (rules.key_version, rules.team_version):
                raise
            self.forget(team_id, key_id)
            raise StalePolicy from refusal

    async def _versions(self, team_id: str, key_id: str) -> tuple[int, int]:
        async with store_errors():
            key_version, team_version = await self._store.execute(
                [
                    ("HGET", redis_keys.key_record(team_id, key_id), "policy_version"),
                    ("HGET", redis_keys.team_record(team_id), "policy_version"),
                ]
            )
        return int(key_version or 0), int(team_version or 0)

    async def _read(self, team_id: str, key_id: str) -> Rules:
        async with store_errors():
            (
                (secret_hash, key_policy, key_version),
                (team_policy, team_version, *prices),
            ) = await self._store.execute(
                [
                    (
                        "HMGET",
                        redis_keys.key_record(team_id, key_id),
                        "secret_hash",
                        "policy",
                        "policy_version",
                    ),
                    ("HMGET", redis_keys.team_record(team_id), *_TEAM_FIELDS),
                ]
            )
        if secret_hash is None:
            raise Unauthorized(INVALID_KEY)
        return Rules(
            key_policy=policy_from(key_policy),
            key_version=int(key_version or 0),
            team_policy=policy_from(team_policy),
            team_version=int(team_version or 0),
            secret_hash=str(secret_hash),
            team_prices=team_prices(dict(zip(CATALOG, prices, strict=True))),
        )


_TEAM_FIELDS = ("policy", "policy_version", *map(redis_keys.team_price_field, CATALOG))


def team_prices(fields: Mapping[str, str | None]) -> dict[str, Price]:
    """A team's own prices from its record's price fields, by endpoint id."""
    found = {endpoint: Price.decode(text) for endpoint, text in fields.items()}
    return {endpoint: price for endpoint, price in found.items() if price is not None}


async def store_team_price(
    redis: Redis, team_id: str, endpoint_id: str, price: Price | None
) -> None:
    """Set (or, with None, clear) a team's own price of an endpoint and bump the team's policy
    version, so cached copies in every process are seen to be stale at their next admission."""
    record, name = redis_keys.team_record(team_id), redis_keys.team_price_field(endpoint_id)
    async with store_errors():
        pipe = redis.pipeline(transaction=True)
        if price is None:
            pipe.hdel(record, name)
        else:
            pipe.hset(record, name, price.encode())
        pipe.hincrby(record, "policy_version", 1)
        await pipe.execute()


async def store_policy(redis: Redis, record: str, policy: Policy) -> None:
    """Replace the policy of a key or team record and bump its version, so cached copies in
    every process are seen to be stale at their next admission."""
    async with store_errors():
        pipe = redis.pipeline(transaction=True)
        pipe.hset(record, "policy", policy_field(policy))
        pipe.hincrby(record, "policy_version", 1)
        await pipe.execute()
