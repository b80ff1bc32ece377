"""The account pool's scripts, as typed methods (``lua/pick_account.lua``, ``release_account``,
``account_health``, ``account_edit``, ``count_failures``). Every key is one of
``redis_keys.UPSTREAM_*`` or an alert delivery of ``redis_keys.UPSTREAM_ALERTS``: the
``{upstreams}`` hash tag, so the whole pool is in one slot on Redis Cluster."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gateway.store import redis_keys
from gateway.store.scripts import Scripts

POOL_KEYS = (
    redis_keys.UPSTREAM_ACCOUNTS,
    redis_keys.UPSTREAM_HEALTH,
    redis_keys.UPSTREAM_IN_FLIGHT,
    redis_keys.UPSTREAM_SLOTS,
    redis_keys.UPSTREAM_DURATIONS,
)


@dataclass(frozen=True)
class Chosen:
    """The account a job goes to, and its key as stored (sealed)."""

    name: str
    sealed_key: str


@dataclass(frozen=True)
class Unavailable:
    """No account takes the job now: ``full`` (every usable one at a hard limit) or ``none``
    (none usable); ``retry_after_ms`` is when to try again (0: unknown)."""

    reason: str
    retry_after_ms: int


@dataclass(frozen=True)
class Edited:
    """What ``account_edit.lua`` did: ``created``, ``updated``, ``deleted``, ``exists``,
    ``missing`` or ``busy``; the account as now stored (``updated``), its jobs in flight
    (``busy``), or when a deleted account's name is free again (``exists``; empty: a live
    account holds it)."""

    outcome: str
    detail: str = ""


class AccountScripts:
    """The pool's scripts on the hot path's connection."""

    def __init__(
        self,
        scripts: Scripts,
        slot_ttl: float,
        assumed_duration: float,
        failures_alert: int = 0,
        failures_window: float = 300,
    ) -> None:
        self._scripts = scripts
        self._failures_alert = failures_alert
        self._failures_window = failures_window
        self._slot_ttl = str(max(1, round(slot_ttl)))
        self._assumed_ms = str(round(assumed_duration * 1000))

    async def pick(self, reservation_id: str, exclude: Collection[str]) -> Chosen | Unavailable:
        """Choose an account for a job and hold one of its slots for ``reservation_id`` (no
        slot when it is empty), never one of ``exclude``."""
        draw = repr(random.random())  # noqa: S311 (load spreading, not security)
        args = [reservation_id, self._slot_ttl, draw, self._assumed_ms, *exclude]
        reply = await self._scripts.run("pick_account", keys=POOL_KEYS, args=args)
        if reply[0] == "ok":
            return Chosen(str(reply[1]), str(reply[2]))
        return Unavailable(str(reply[0]), int(reply[1]))

    async def release(self, account: str, reservation_id: str) -> bool:
        """Give back the slot ``reservation_id`` held on ``account``; False when it held none."""
        reply = await self._scripts.run(
            "release_account",
            keys=POOL_KEYS[2:],
            args=[account, reservation_id, self._slot_ttl],
        )
        return reply == [1]

    async def health(self, change: str, account: str, fingerprint: str, detail: str) -> bool:
        """Record what fal said of ``account``'s key (``account_health.lua``); True when its
        state changed."""
        owner = redis_keys.UPSTREAM_ALERTS
        slots, alert_args = self._scripts.alerts.prepare(owner, 1)
        reply = await self._scripts.run(
            "account_health",
            keys=[*POOL_KEYS[:2], redis_keys.undelivered(owner), *slots],
            args=[change, account, fingerprint, detail, *alert_args],
        )
        await self._scripts.alerts.queue(owner, reply[-2:])
        return bool(reply[0] == 1)

    async def count_failures(self, day: str, failed: Mapping[str, int]) -> None:
        """Add failed calls per account to the ``day``'s counts and the alert window's
        (``count_failures.lua``: ``upstream.failing`` once an account's reach the threshold)."""
        owner = redis_keys.UPSTREAM_ALERTS
        slots, alert_args = self._scripts.alerts.prepare(owner, len(failed))
        counts = [part for name, n in failed.items() for part in (name, n)]
        window = redis_keys.UPSTREAM_FAILURE_WINDOW
        reply = await self._scripts.run(
            "count_failures",
            keys=[redis_keys.upstream_failures(day), window, redis_keys.undelivered(owner), *slots],
            args=[
                *alert_args,
                redis_keys.UPSTREAM_FAILURES_KEPT,
                self._failures_alert,
                self._failures_window,
                *counts,
            ],
        )
        await self._scripts.alerts.queue(owner, reply)

    async def edit(
        self,
        action: str,
        account: str,
        value: str = "",
        clears_health: bool = False,
        keep_name_for: float = 0,
    ) -> Edited:
        """Create, update, delete (to a tombstone) or purge an account (``account_edit.lua``);
        ``keep_name_for``: seconds a deleted account keeps its name."""
        args = [action, account, value, "1" if clears_health else "0", str(round(keep_name_for))]
        keys = (*POOL_KEYS[:3], redis_keys.UPSTREAM_DURATIONS)
        reply = await self._scripts.run("account_edit", keys=keys, args=args)
        return Edited(str(reply[0]), str(reply[1]) if len(reply) > 1 else "")
