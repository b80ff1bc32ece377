"""The fal accounts of the gateway's pool, as stored and as the admin API shows them.

Each account holds a fal key, sealed (AES-GCM under ``Settings.account_sealing_key``) so that a
copy of Redis alone does not reveal it; only its fingerprint (the first 12 hex digits of its
SHA-256, as fal's and the emulator's logs can show) is ever displayed. Accounts named in
``GATEWAY_FAL_KEY`` are created at start (``seed``) and follow that setting's key.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.errors import FalError, NotFound
from gateway.store import redis_keys
from gateway.store.account_scripts import AccountScripts
from gateway.store.multiplexed import Store, hash_reply
from gateway.store.pool import store_errors
from gateway.web import jsoncodec
from gateway.web.sealing import Sealer

logger = logging.getLogger(__name__)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
KEY_CONTEXT = b"fal-gateway upstream key v1"
OPERATOR_DISABLED = "disabled by the operator"
STATES = ("active", "cooling", "disabled")
"""What an account can be: taking jobs, resting after fal's 429, or taking none."""
ENV_SOURCE = "env"


class AccountUnreadable(FalError):
    """This process cannot open an account's key (sealed under another secret)."""

    status_code = 503
    error_type = "upstream_account_unreadable"

    def __init__(self, account: str) -> None:
        super().__init__("The gateway cannot use one of its fal accounts now; try again later")
        self.account = account


def fingerprint(key: str) -> str:
    """What identifies a fal key without revealing it."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _key_value(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    # Printable ASCII only: what an Authorization header can carry (a NUL or an accent fails
    # every call on the account, a 500, not a refusal by fal).
    if not text or len(text) > 512 or not all("!" <= c <= "~" for c in text):
        raise ValueError("key must be a fal key: 1 to 512 printable ASCII characters, no spaces")
    return value


Weight = Annotated[int, Field(ge=0, le=1000)]
MaxConcurrent = Annotated[int, Field(ge=0, le=100_000)]


class AccountChange(BaseModel):
    """Fields of an account an operator may change (every one optional)."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr | None = None
    """The fal key (``key_id:key_secret``); write-only."""
    weight: Weight | None = None
    """Share of new jobs among accounts with free slots; 0 takes no new job (draining)."""
    max_concurrent: MaxConcurrent | None = None
    """Jobs in flight on the account before it counts as full (0: no limit)."""
    hard_limit: bool | None = None
    """At its limit, refuse new jobs (429) instead of letting fal queue them."""
    enabled: bool | None = None
    """Off: no new job goes to it (jobs already there are still served); on again also clears
    a refusal by fal."""

    @field_validator("key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _key_value(value)


class AccountCreate(AccountChange):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    key: SecretStr
    weight: Weight = 1
    max_concurrent: MaxConcurrent = 0
    hard_limit: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class Account:
    """An account as stored (``redis_keys.UPSTREAM_ACCOUNTS``)."""

    name: str
    key: str
    """The fal key, sealed."""
    fingerprint: str
    weight: int = 1
    max_concurrent: int = 0
    hard_limit: bool = False
    enabled: bool = True
    source: str = "admin"
    """``env`` (seeded from ``GATEWAY_FAL_KEY``) or ``admin``."""
    created_at: float = 0.0
    updated_at: float = 0.0
    deleted_at: float | None = None
    """When it was deleted: a tombstone whose key serves only the reads of the jobs it ran."""

    @classmethod
    def from_json(cls, name: str, text: str) -> Account:
        fields = jsoncodec.loads(text)
        known = {k: fields[k] for k in cls.__dataclass_fields__ if k in fields}
        return cls(**{**known, "name": name})

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["name"]
        return jsoncodec.dumps(fields)


@dataclass(frozen=True)
class Health:
    """What fal's answers said of an account (``redis_keys.UPSTREAM_HEALTH``)."""

    state: str
    """``refused`` (fal refused the key: disabled until a probe or the operator restores it)
    or ``cooling`` (fal answered 429)."""
    reason: str
    since: float
    until: float | None = None


@dataclass(frozen=True)
class AccountView:
    """An account with its live state."""

    account: Account
    health: Health | None
    in_flight: int

    def state(self, now: float) -> tuple[str, str]:
        """``active``, ``cooling`` or ``disabled``, and why (empty when active)."""
        if not self.account.enabled:
            return "disabled", OPERATOR_DISABLED
        health = self.health
        if health is not None and health.state == "refused":
            return "disabled", health.reason
        if health is not None and health.state == "cooling" and (health.until or 0) > now:
            return "cooling", health.reason
        return "active", ""

    def usable(self, now: float) -> bool:
        """Whether new jobs may go to it."""
        return self.state(now)[0] == "active" and self.account.weight > 0

    def public(self, now: float) -> dict[str, Any]:
        """What the admin API shows: never the key, only its fingerprint."""
        account = self.account
        state, reason = self.state(now)
        health = self.health
        return {
            "name": account.name,
            "key_fingerprint": account.fingerprint,
            "weight": account.weight,
            "max_concurrent": account.max_concurrent,
            "hard_limit": account.hard_limit,
            "enabled": account.enabled,
            "state": state,
            "reason": reason or None,
            "since": health.since if health is not None and state != "active" else None,
            "cooling_until": health.until if state == "cooling" and health else None,
            "in_flight": self.in_flight,
            "source": account.source,
            "created_at": account.created_at,
            "updated_at": account.updated_at,
        }


def _health(text: str | None) -> Health | None:
    if not text:
        return None
    fields = jsoncodec.loads(text)
    return Health(
        str(fields.get("state", "")),
        str(fields.get("reason", "")),
        float(fields.get("since", 0)),
        None if fields.get("until") is None else float(fields["until"]),
    )


def env_accounts(keys: tuple[SecretStr, ...]) -> list[tuple[str, str]]:
    """``(name, key)`` of each ``GATEWAY_FAL_KEY`` entry: ``name=key``, or a bare key named
    ``fal-<first 8 hex of its fingerprint>``: by the key, never by its place in the list, so
    taking one key out never hands its account's name (and jobs) to another key."""
    found = []
    for entry in keys:
        text = entry.get_secret_value()
        name, sep, key = text.partition("=")
        if not sep or not _is_name(name):
            name, key = f"fal-{fingerprint(text)[:8]}", text
        found.append((name, key))
    return found


def _is_name(text: str) -> bool:
    return re.fullmatch(NAME_PATTERN, text) is not None


class AccountStore:
    """The pool's accounts in Redis, shared by every replica."""

    def __init__(
        self, store: Store, scripts: AccountScripts, sealer: Sealer, keep_deleted: float
    ) -> None:
        self._store = store
        self._scripts = scripts
        self._sealer = sealer
        self._keep_deleted = keep_deleted
        """How long a deleted account's key serves its jobs' reads (their records' lifetime)."""

    def open_key(self, name: str, sealed: str) -> str:
        """The fal key sealed in an account; ``AccountUnreadable`` when another secret sealed
        it (the operator is told in the log, the caller only that the account is unusable)."""
        key = self._sealer.unseal(sealed)
        if key is None:
            logger.warning(
                "the fal key of upstream account %s cannot be opened: it was sealed under another "
                "GATEWAY_ACCOUNT_SECRET; set the key again",
                name,
            )
            raise AccountUnreadable(name)
        return key.decode()

    async def views(self, deleted: bool = False) -> list[AccountView]:
        """Every account with its live state, by name (one round trip); with ``deleted``, the
        tombstones of deleted accounts too."""
        async with store_errors():
            accounts, health, counts = await self._store.execute(
                [
                    ("HGETALL", redis_keys.UPSTREAM_ACCOUNTS),
                    ("HGETALL", redis_keys.UPSTREAM_HEALTH),
                    ("HGETALL", redis_keys.UPSTREAM_IN_FLIGHT),
                ]
            )
        health_of, count_of = hash_reply(health), hash_reply(counts)
        found = [
            AccountView(
                Account.from_json(name, text),
                _health(health_of.get(name)),
                max(0, int(count_of.get(name) or 0)),
            )
            for name, text in sorted(hash_reply(accounts).items())
        ]
        return [view for view in found if deleted or view.account.deleted_at is None]

    async def view(self, name: str) -> AccountView:
        """One account with its live state (404 when there is none)."""
        for found in await self.views():
            if found.account.name == name:
                return found
        raise NotFound("Upstream account not found")

    async def create(self, spec: AccountCreate, source: str = "admin") -> AccountView:
        """A new account (409 when the name is taken, also by a deleted account whose jobs'
        results may still be fetched; the environment's accounts take their names back)."""
        key = spec.key.get_secret_value()
        now = time.time()
        account = Account(
            name=spec.name,
            key=self._sealer.seal(key.encode()),
            fingerprint=fingerprint(key),
            weight=spec.weight,
            max_concurrent=spec.max_concurrent,
            hard_limit=spec.hard_limit,
            enabled=spec.enabled,
            source=source,
            created_at=now,
            updated_at=now,
        )
        keep = 0 if source == ENV_SOURCE else self._keep_deleted
        edited = await self._scripts.edit(
            "create", spec.name, account.to_json(), keep_name_for=keep
        )
        if edited.outcome == "exists":
            detail = "An upstream account with this name exists"
            if edited.detail:
                free = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(edited.detail)))
                detail = (
                    "A deleted upstream account keeps this name while the results of its jobs "
                    f"may be fetched, until {free}"
                )
            raise FalError(detail, status_code=409, error_type="conflict")
        return await self.view(spec.name)

    async def update(self, name: str, change: AccountChange) -> AccountView:
        """Change an account's fields; a new key, or enabling it, clears fal's refusal."""
        fields: dict[str, Any] = change.model_dump(exclude_unset=True, exclude={"key"})
        fields = {k: v for k, v in fields.items() if v is not None}
        if change.key is not None:
            key = change.key.get_secret_value()
            fields |= {"key": self._sealer.seal(key.encode()), "fingerprint": fingerprint(key)}
        fields["updated_at"] = time.time()
        clears = change.key is not None or change.enabled is True
        edited = await self._scripts.edit("update", name, jsoncodec.dumps(fields), clears)
        if edited.outcome == "missing":
            raise NotFound("Upstream account not found")
        return await self.view(name)

    async def delete(self, name: str) -> None:
        """Remove an account once no job holds a slot on it (409 before); its key still serves
        the reads of its jobs until their records expire."""
        edited = await self._scripts.edit("delete", name)
        if edited.outcome == "missing":
            raise NotFound("Upstream account not found")
        if edited.outcome == "busy":
            raise FalError(
                f"The account has {edited.detail} job(s) in flight; set its weight to 0 (or "
                "disable it) and delete it once they have ended",
                status_code=409,
                error_type="conflict",
            )

    async def purge(self, views: list[AccountView], now: float) -> None:
        """Drop the tombstones of accounts deleted longer ago than their jobs' records live."""
        for view in views:
            deleted_at = view.account.deleted_at
            if deleted_at is not None and deleted_at + self._keep_deleted <= now:
                await self._scripts.edit(
                    "purge", view.account.name, keep_name_for=self._keep_deleted
                )

    async def seed(self, keys: tuple[SecretStr, ...]) -> None:
        """Create the accounts ``GATEWAY_FAL_KEY`` names, and give those that exist the key
        it holds now (a key rotated through the environment), sealed under this process's
        secret."""
        existing = {view.account.name: view.account for view in await self.views()}
        for name, key in env_accounts(keys):
            account = existing.get(name)
            if account is None:
                try:
                    await self.create(AccountCreate(name=name, key=SecretStr(key)), ENV_SOURCE)
                except FalError as exc:
                    if exc.status_code != 409:  # another replica seeded it first
                        raise
            elif account.source == ENV_SOURCE and (
                account.fingerprint != fingerprint(key) or self._sealer.unseal(account.key) is None
            ):  # a key rotated, or sealed under another secret (the admin token, rotated)
                await self.update(name, AccountChange(key=SecretStr(key)))
