"""Teams: the accounts that own keys, hold credit and carry team-wide limits and policy.

Money is integer micro-units. The price multiplier (the reseller's margin) is kept in parts per
million so admission can apply it with integer arithmetic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field
from redis.asyncio import Redis
from redis.exceptions import WatchError

from gateway.accounts import indexes, tokens
from gateway.accounts.keys import rfc3339
from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.catalog import CATALOG
from gateway.catalog.pricing import Price
from gateway.errors import NotFound
from gateway.policy.cache import store_policy, team_prices
from gateway.policy.limits import (
    DEFAULT_CHARGE_RULE,
    PPM,
    TeamLimits,
    integer_limits,
    redis_fields,
)
from gateway.policy.model import Policy, policy_field, policy_from
from gateway.store import redis_keys
from gateway.store.pool import RedisFields, fields_of, store_errors

TeamId = Annotated[str, Field(pattern=f"^{TEAM_ID_PATTERN}$")]


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    created_at: float
    balance_micros: int
    reserved_micros: int
    multiplier_ppm: int
    limits: dict[str, int | None]
    policy: Policy
    policy_version: int
    sync_hangup: str = "charge"
    """What a sync run whose caller hung up costs: ``charge`` (as fal bills it) or ``refund``."""
    failed_job: str = DEFAULT_CHARGE_RULE
    """What a failed job costs (``limits.charge_rules``)."""
    cancelled_running: str = DEFAULT_CHARGE_RULE
    """What a job cancelled while it ran costs, when it produced nothing."""
    prices: dict[str, Price] = field(default_factory=dict)
    """The team's own price of an endpoint, by endpoint id, where it has one."""
    alert_webhook_url: str = ""
    """Where the team's own low-balance alerts go (empty: nowhere)."""

    @classmethod
    def from_record(cls, team_id: str, fields: dict[str, str]) -> Team:
        return cls(
            id=team_id,
            name=fields.get("name", team_id),
            created_at=float(fields.get("created_at", "0")),
            balance_micros=int(fields.get("balance", "0")),
            reserved_micros=int(fields.get("reserved", "0")),
            multiplier_ppm=int(fields.get("multiplier_ppm", str(PPM))),
            limits=integer_limits(TeamLimits, fields),
            policy=policy_from(fields.get("policy")),
            policy_version=int(fields.get("policy_version", "0")),
            sync_hangup=fields.get("sync_hangup") or "charge",
            failed_job=fields.get("failed_job") or DEFAULT_CHARGE_RULE,
            cancelled_running=fields.get("cancelled_running") or DEFAULT_CHARGE_RULE,
            prices=team_prices({e: fields.get(redis_keys.team_price_field(e)) for e in CATALOG}),
            alert_webhook_url=fields.get("alert_url", ""),
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": rfc3339(self.created_at),
            "balance_micros": self.balance_micros,
            "reserved_micros": self.reserved_micros,
            "available_micros": self.balance_micros - self.reserved_micros,
            "price_multiplier": str(Decimal(self.multiplier_ppm) / PPM),
            "limits": self.limits,
            "sync_hangup": self.sync_hangup,
            "failed_job": self.failed_job,
            "cancelled_running": self.cancelled_running,
            "alert_webhook_url": self.alert_webhook_url or None,
            "policy": self.policy.model_dump(exclude_defaults=True),
            "prices": {
                endpoint: {"version": price.version, **price.terms()}
                for endpoint, price in self.prices.items()
            },
        }


def ledger_entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """A ledger stream entry as the admin API shows it."""
    return {
        "id": entry_id,
        "at": rfc3339(int(entry_id.split("-")[0]) / 1000),
        "kind": fields["kind"],
        "amount_micros": int(fields["amount_micros"]),
        "balance_micros": int(fields["balance_micros"]),
        "request_id": fields.get("request_id") or None,
        "key_id": fields.get("key_id") or None,
        "note": fields.get("note", ""),
    }


def _team(team_id: str, fields: dict[str, str]) -> Team | None:
    """The team a record holds; None when there is no record."""
    return Team.from_record(team_id, fields) if indexes.TeamIndex.EXISTS_FIELD in fields else None


class TeamStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, team_id: str, name: str, limits: TeamLimits) -> Team | None:
        """Create a team with a zero balance; None if the id is taken."""
        fields: RedisFields = {
            "name": name,
            "created_at": repr(time.time()),
            "balance": "0",
            "reserved": "0",
            "policy": policy_field(Policy()),
            "policy_version": "0",
            **redis_fields(TeamLimits, limits.model_dump()),
        }
        async with store_errors():
            await indexes.begin(self._redis, indexes.TEAMS, team_id, team_id)
            created = await self._create_record(team_id, fields)
            await indexes.end(self._redis, indexes.TEAMS, team_id)
        return await self.get(team_id) if created else None

    async def _create_record(self, team_id: str, fields: RedisFields) -> bool:
        """Write the team's record whole, unless it exists."""
        record = redis_keys.team_record(team_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(record)
            if await pipe.hexists(record, indexes.TeamIndex.EXISTS_FIELD):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(record, mapping=fields)
            try:
                await pipe.execute()
            except WatchError:  # written meanwhile: another create of the same id
                return False
        return True

    async def ensure(self, team_id: str) -> None:
        """Create ``team_id`` (zero balance, no limits) unless it exists."""
        await self.create(team_id, team_id, TeamLimits())

    async def get(self, team_id: str) -> Team | None:
        async with store_errors():
            fields = fields_of(await self._redis.hgetall(redis_keys.team_record(team_id)))
        return _team(team_id, fields)

    async def require(self, team_id: str) -> Team:
        team = await self.get(team_id)
        if team is None:
            raise NotFound("Team not found")
        return team

    async def all(self) -> list[Team]:
        """Every team, by id; index entries without a record are skipped (``indexes``)."""
        ids = await self._indexed()
        async with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for team_id in ids:
                pipe.hgetall(redis_keys.team_record(team_id))
            records = await pipe.execute()
        teams = (_team(t, fields_of(f)) for t, f in zip(ids, records, strict=True))
        return [team for team in teams if team is not None]

    async def ids(self) -> list[str]:
        """The id of every team, sorted."""
        ids = await self._indexed()
        async with store_errors():
            found = await indexes.existing(self._redis, indexes.TEAMS, [(t, t) for t in ids])
        return [t for t in ids if t in found]

    async def _indexed(self) -> list[str]:
        async with store_errors():
            return sorted(str(t) for t in await self._redis.smembers(redis_keys.TEAM_INDEX))

    async def update_limits(self, team_id: str, changes: dict[str, Any]) -> Team:
        await self.require(team_id)
        fields: RedisFields = redis_fields(TeamLimits, changes)
        if fields:
            async with store_errors():
                await self._redis.hset(redis_keys.team_record(team_id), mapping=fields)
        return await self.require(team_id)

    async def set_policy(self, team_id: str, policy: Policy) -> Team:
        await self.require(team_id)
        await store_policy(self._redis, redis_keys.team_record(team_id), policy)
        return await self.require(team_id)

    async def set_alert_webhook(self, team_id: str, url: str) -> str:
        """Send the team's low-balance alerts to ``url``, signed with a new secret (returned,
        never shown again; the previous one stops at once)."""
        await self.require(team_id)
        secret = tokens.new_webhook_secret()
        fields: RedisFields = {"alert_url": url, "alert_secret": secret}
        async with store_errors():
            await self._redis.hset(redis_keys.team_record(team_id), mapping=fields)
        return secret

    async def remove_alert_webhook(self, team_id: str) -> Team:
        """Send the team's alerts to the operator only."""
        await self.require(team_id)
        async with store_errors():
            await self._redis.hdel(redis_keys.team_record(team_id), "alert_url", "alert_secret")
        return await self.require(team_id)

    async def ledger(self, team_id: str, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` ledger entries, newest first."""
        async with store_errors():
            entries = await self._redis.xrevrange(redis_keys.ledger(team_id), count=limit)
        return [
            ledger_entry(str(entry_id), fields_of(fields)) for entry_id, fields in entries or []
        ]
