"""API keys issued by the gateway: their Redis records, creation, lookup, revocation, checking."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from gateway.accounts import indexes, tokens
from gateway.accounts.tokens import ProvenToken, Token
from gateway.errors import INVALID_KEY, Unauthorized
from gateway.policy.cache import store_policy
from gateway.policy.limits import KeyLimits, integer_limits, redis_fields
from gateway.policy.model import Policy, policy_field, policy_from
from gateway.store import redis_keys
from gateway.store.pool import RedisFields, fields_of, store_errors
from gateway.telemetry import log_context

ACTIVE = "active"
REVOKED = "revoked"


LAST_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The last moment RFC 3339 (and ``datetime``) can write; a key's ``expires_at`` must be earlier."""


def future_moment(name: str, value: datetime | None) -> datetime | None:
    """``value`` (None stays None) if it is in the future and before the year 10000; else the
    ``ValueError`` a model's validator raises for field ``name``."""
    if value is not None and value.timestamp() <= time.time():
        raise ValueError(f"{name} must be in the future")
    if value is not None and value.timestamp() > LAST_TIMESTAMP:
        raise ValueError(f"{name} must be before the year 10000")
    return value


def rfc3339(timestamp: float | None) -> str | None:
    """A Unix time as RFC 3339 in UTC; times past year 9999 (which admin APIs that did not bound
    ``expires_at`` could store) read as its last second."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(min(timestamp, LAST_TIMESTAMP), UTC)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    team_id: str
    status: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    policy: Policy
    policy_version: int
    limits: dict[str, int | None]
    spent_micros: int
    reserved_micros: int
    uploaded_bytes: int

    def usable(self, now: float) -> bool:
        return self.status == ACTIVE and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, Any]:
        """The key as the admin API shows it: never the secret or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "team_id": self.team_id,
            "status": self.status,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "revoked_at": rfc3339(self.revoked_at),
            "policy": self.policy.model_dump(exclude_defaults=True),
            "limits": self.limits,
            "spent_micros": self.spent_micros,
            "reserved_micros": self.reserved_micros,
            "uploaded_bytes": self.uploaded_bytes,
        }

    @classmethod
    def from_record(cls, key_id: str, fields: dict[str, str]) -> ApiKey:
        return cls(
            id=key_id,
            name=fields["name"],
            team_id=fields["team_id"],
            status=fields["status"],
            created_at=float(fields["created_at"]),
            expires_at=float(fields["expires_at"]) if fields.get("expires_at") else None,
            revoked_at=float(fields["revoked_at"]) if fields.get("revoked_at") else None,
            policy=policy_from(fields.get("policy")),
            policy_version=int(fields.get("policy_version") or 0),
            limits=integer_limits(KeyLimits, fields),
            spent_micros=int(fields.get("spent") or 0),
            reserved_micros=int(fields.get("reserved") or 0),
            uploaded_bytes=int(fields.get("uploaded") or 0),
        )


def parse_authorization(header: str | None) -> Token:
    """The gateway token in ``Authorization: Bearer <key>`` or ``Key <key>``."""
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() in ("bearer", "key"):
            token = tokens.parse(value.strip())
            if token is not None:
                log_context.bind(key_id=token.key_id, team=token.team_id)
                return token
    raise Unauthorized(INVALID_KEY)


KEY_CHECK_FIELDS = ("secret_hash", "team_id", "status", "expires_at")
"""The fields of a key record ``verify_key`` reads."""


def verify_key(token: Token, fields: Mapping[str, str | None], now: float) -> None:
    """Raise 401 unless the key a token names exists, its secret matches and it is usable."""
    stored_hash = fields.get("secret_hash") or ""
    # Compare even when the record is missing, so timing does not reveal which keys exist.
    secret_ok = hmac.compare_digest(token.secret_hash, stored_hash or "0" * 64)
    expires_at = fields.get("expires_at")
    if (
        not stored_hash
        or not secret_ok
        or fields.get("team_id") != token.team_id
        or fields.get("status") != ACTIVE
        or (expires_at and now >= float(expires_at))
    ):
        raise Unauthorized(INVALID_KEY)


def check_key(token: Token, fields: dict[str, str], now: float) -> ApiKey:
    """The key a token names, if its record exists, the secret matches and it is usable."""
    verify_key(token, fields, now)
    return ApiKey.from_record(token.key_id, fields)


class KeyStore:
    """API key records in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(
        self,
        name: str,
        team_id: str = tokens.DEFAULT_TEAM,
        expires_at: float | None = None,
        policy: Policy | None = None,
        limits: dict[str, Any] | None = None,
    ) -> tuple[ApiKey, str, str]:
        """Create a key; returns it, its secret token (never stored, never shown again) and its
        webhook signing secret (stored, to sign, but never shown again either)."""
        token = tokens.mint(team_id)
        webhook_secret = tokens.new_webhook_secret()
        now = time.time()
        fields = {
            "name": name,
            "team_id": team_id,
            "secret_hash": tokens.hash_secret(token.secret),
            "status": ACTIVE,
            "created_at": repr(now),
            "expires_at": "" if expires_at is None else repr(expires_at),
            "revoked_at": "",
            "policy": policy_field(policy or Policy()),
            "policy_version": "0",
            "webhook_secret": webhook_secret,
            "spent": "0",
            "reserved": "0",
            **redis_fields(KeyLimits, dict.fromkeys(KeyLimits.model_fields) | (limits or {})),
        }
        async with store_errors():
            record: RedisFields = fields
            await indexes.begin(self._redis, indexes.KEYS, token.key_id, team_id)
            await self._redis.hset(redis_keys.key_record(team_id, token.key_id), mapping=record)
            await indexes.end(self._redis, indexes.KEYS, token.key_id)
        return ApiKey.from_record(token.key_id, fields), str(token), webhook_secret

    async def get(self, key_id: str) -> ApiKey | None:
        async with store_errors():
            team_id = await self._redis.hget(redis_keys.KEY_INDEX, key_id)
            if team_id is None:
                return None
            fields = fields_of(
                await self._redis.hgetall(redis_keys.key_record(str(team_id), key_id))
            )
        return ApiKey.from_record(key_id, fields) if fields else None

    async def all(self) -> list[ApiKey]:
        """Every key, oldest first; index entries without a record are skipped (``indexes``)."""
        async with store_errors():
            index = fields_of(await self._redis.hgetall(redis_keys.KEY_INDEX))
            pipe = self._redis.pipeline(transaction=False)
            for key_id, team_id in index.items():
                pipe.hgetall(redis_keys.key_record(team_id, key_id))
            records = await pipe.execute()
        keys = [ApiKey.from_record(k, f) for k, f in zip(index, records, strict=True) if f]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str) -> ApiKey | None:
        key = await self.get(key_id)
        if key is None:
            return None
        if key.status != REVOKED:
            async with store_errors():
                await self._redis.hset(
                    redis_keys.key_record(key.team_id, key_id),
                    mapping={"status": REVOKED, "revoked_at": repr(time.time())},
                )
        return await self.get(key_id)

    async def set_policy(self, key_id: str, policy: Policy) -> ApiKey | None:
        key = await self.get(key_id)
        if key is None:
            return None
        await store_policy(self._redis, redis_keys.key_record(key.team_id, key_id), policy)
        return await self.get(key_id)

    async def update_limits(self, key_id: str, changes: dict[str, Any]) -> ApiKey | None:
        key = await self.get(key_id)
        if key is None:
            return None
        fields: RedisFields = redis_fields(KeyLimits, changes)
        if fields:
            async with store_errors():
                await self._redis.hset(redis_keys.key_record(key.team_id, key_id), mapping=fields)
        return await self.get(key_id)

    async def rotate_webhook_secret(self, key_id: str, grace: float) -> tuple[str, float] | None:
        """A new webhook secret; the old one keeps signing for ``grace`` seconds. None when the
        key does not exist. Returns the new secret and when the old one stops."""
        key = await self.get(key_id)
        if key is None:
            return None
        record = redis_keys.key_record(key.team_id, key_id)
        secret, until = tokens.new_webhook_secret(), time.time() + grace
        async with store_errors():
            old = await self._redis.hget(record, "webhook_secret")
            fields: RedisFields = {
                "webhook_secret": secret,
                "webhook_secret_previous": old or "",
                "webhook_previous_until": repr(until),
            }
            await self._redis.hset(record, mapping=fields)
        return secret, until

    async def webhook_secrets(self, team_id: str, key_id: str, now: float) -> list[str]:
        """The secrets that sign the key's webhooks now: the current one, and the previous one
        during its grace period."""
        async with store_errors():
            current, previous, until = await self._redis.hmget(
                redis_keys.key_record(team_id, key_id),
                ["webhook_secret", "webhook_secret_previous", "webhook_previous_until"],
            )
        found = [str(current)] if current else []
        if previous and until and now < float(until):
            found.append(str(previous))
        return found

    async def reserve_upload(self, team_id: str, key_id: str, size: int) -> bool:
        """Count ``size`` bytes against the key's upload quota; False (nothing counted) when
        they do not fit."""
        record = redis_keys.key_record(team_id, key_id)
        async with store_errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hincrby(record, "uploaded", size)
            pipe.hget(record, "upload_quota")
            total, quota = await pipe.execute()
            if int(quota or 0) > 0 and int(total) > int(quota):
                await self._redis.hincrby(record, "uploaded", -size)
                return False
        return True

    async def usable(self, team_id: str, key_id: str) -> bool:
        """Whether the key still exists, active and unexpired (one round trip): for what it
        was granted earlier, such as an upload URL."""
        async with store_errors():
            status, expires_at = await self._redis.hmget(
                redis_keys.key_record(team_id, key_id), ["status", "expires_at"]
            )
        return status == ACTIVE and (not expires_at or time.time() < float(expires_at))

    async def release_upload(self, team_id: str, key_id: str, size: int) -> None:
        """Give back bytes counted for an upload that did not happen."""
        async with store_errors():
            await self._redis.hincrby(redis_keys.key_record(team_id, key_id), "uploaded", -size)

    async def by_secret_hash(self, team_id: str, key_id: str, secret_hash: str) -> ApiKey | None:
        """The key, if it is still usable and still has the secret whose hash is given (a
        portal session, which keeps only that hash): the API's own check (``check_key``)."""
        async with store_errors():
            fields = fields_of(await self._redis.hgetall(redis_keys.key_record(team_id, key_id)))
        try:
            return check_key(ProvenToken(team_id, key_id, proof=secret_hash), fields, time.time())
        except Unauthorized:
            return None

    async def authenticate(self, authorization: str | None) -> ApiKey:
        """The usable key behind an ``Authorization`` header (one round trip), or 401."""
        token = parse_authorization(authorization)
        async with store_errors():
            fields = fields_of(
                await self._redis.hgetall(redis_keys.key_record(token.team_id, token.key_id))
            )
        return check_key(token, fields, time.time())
