"""The Lua scripts, as typed methods: each builds its ``KEYS`` from ``redis_keys`` and reads its
reply into a value. Sources are ``lua/<name>.lua`` in this package; every key a script touches
shares its team's hash tag (but the delivery queue, whose retry schedule shares its slot, and the
reconciler's schedule, whose keys share the tag ``{reconcile}``), so they run on Redis Cluster
too.

Scripts run with EVALSHA on the process's multiplexed connection and are loaded when Redis does
not know them yet (after a restart or a flush).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import ResponseError

from gateway.store import redis_keys
from gateway.store.multiplexed import Command, Store
from gateway.store.pool import store_errors
from gateway.store.retention import SPEND_FIELDS, Retention
from gateway.telemetry.metrics import Metrics

NAMES = ("admit", "finish", "credit", "claim", "release", "promote", "unlock")

WEBHOOK_ON_RESERVATION = "*"
"""``Ending.webhook_url`` for "the URL the reservation holds" (request records do not repeat
it, so a finish from a request record knows only that there is one)."""


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Admitted:
    """``admit.lua`` reserved the credit and took a lease."""

    cost_micros: int
    rate_limit: int
    rate_remaining: int
    rate_reset_ms: int


@dataclass(frozen=True)
class Refused:
    """``admit.lua`` refused, and why."""

    reason: str
    retry_after_ms: int
    detail: int


@dataclass(frozen=True)
class Admission:
    """What to reserve for one submit."""

    team_id: str
    key_id: str
    secret_hash: str
    estimate_micros: int
    reservation_id: str
    endpoint_id: str
    key_policy_version: int
    team_policy_version: int
    lease_ttl: int
    reservation_ttl: int
    unbound_for: int = 0
    """Seconds the job may run without a fal request id (a sync run) before it counts as
    abandoned."""


@dataclass(frozen=True)
class Ending:
    """How one job ended, as ``finish.lua`` records it."""

    team_id: str
    key_id: str
    reservation_id: str
    request_id: str
    outcome: str
    list_cost: int = 0
    """The actual list price (micros); -1 charges the admission estimate."""
    images: int = 0
    pixels: int = 0
    final_status: str = ""
    """fal's final status (JSON) to answer later polls with; empty: none."""
    webhook_url: str = ""
    """Where to queue the caller's webhook (``WEBHOOK_ON_RESERVATION``: the reservation's);
    empty: nowhere."""
    webhook_body: str = ""


class BalanceOutOfRange(ValueError):
    """A credit would take a balance past the largest one allowed."""

    def __init__(self, balance: int) -> None:
        super().__init__(balance)
        self.balance = balance


@dataclass(frozen=True)
class Finished:
    settlement: str
    """``settled`` (by this call), ``already`` or ``missing``."""
    charged: int
    delivery: str
    """``new``, ``duplicate`` or ``none``."""
    overrun: int = 0
    """What the actual cost exceeded the reservation by (not charged)."""


class Scripts:
    """The scripts, timed per call; Redis being unreachable is a 503 (``store_errors``)."""

    def __init__(self, store: Store, metrics: Metrics, retention: Retention) -> None:
        self._store = store
        self._metrics = metrics
        self._retention = retention
        self._sources = {name: _source(name) for name in NAMES}
        self._shas = {
            name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for name, source in self._sources.items()
        }

    async def admit(self, a: Admission) -> Admitted | Refused:
        """Rate limits, a concurrency lease and a credit reservation, all or nothing; the team
        goes on the reconciler's schedule in the same round trip.

        The schedule's ``ZADD`` follows the script in one batch rather than running inside it:
        its key is outside the team's hash tag (Redis Cluster). Sent after the script, it lands
        once the reservation exists; a refused admission schedules a look that finds nothing.
        A process dying between the two leaves a reservation the audit finds."""
        t, k = a.team_id, a.key_id
        schedule = ("ZADD", redis_keys.RECONCILE_DUE, "LT", f"{time.time():.6f}", t)
        reply = await self._run(
            "admit",
            keys=[
                redis_keys.key_record(t, k),
                redis_keys.team_record(t),
                redis_keys.key_rate(t, k),
                redis_keys.team_rate(t),
                redis_keys.leases(t, k),
                redis_keys.reservation(t, a.reservation_id),
                redis_keys.open_reservations(t),
                redis_keys.spend(t),
            ],
            args=[
                a.secret_hash,
                a.estimate_micros,
                a.reservation_id,
                a.lease_ttl,
                a.reservation_ttl,
                a.key_policy_version,
                a.team_policy_version,
                a.endpoint_id,
                k,
                a.unbound_for,
                self._retention.spend,
                SPEND_FIELDS,
            ],
            then=[schedule],
        )
        if reply[0] != "ok":
            return Refused(str(reply[1]), int(reply[2]), int(reply[3]))
        return Admitted(int(reply[1]), int(reply[2]), int(reply[3]), int(reply[4]))

    async def finish(self, e: Ending) -> Finished:
        """Settle, remember the final status and queue the caller's webhook, together."""
        t = e.team_id
        reservation = redis_keys.reservation(t, e.reservation_id)
        reply = await self._run(
            "finish",
            keys=[
                reservation,
                redis_keys.team_record(t),
                redis_keys.key_record(t, e.key_id),
                redis_keys.leases(t, e.key_id),
                redis_keys.open_reservations(t),
                redis_keys.spend(t),
                redis_keys.ledger(t),
                redis_keys.usage_log(t),
                redis_keys.request_record(t, e.request_id) if e.request_id else reservation,
                redis_keys.delivery(t, e.request_id or e.reservation_id),
                redis_keys.key_deliveries(t, e.key_id),
                redis_keys.DELIVERY_STREAM,
                redis_keys.delivery_team(e.request_id or e.reservation_id),
            ],
            args=[
                e.reservation_id,
                e.list_cost,
                e.images,
                e.pixels,
                e.outcome,
                e.request_id,
                redis_keys.usage_day_prefix(t),
                e.final_status,
                e.webhook_url if e.request_id else "",
                e.webhook_body,
                t,
                e.key_id,
                self._retention.delivery_pending,
                self._retention.usage,
                self._retention.ledger,
                self._retention.spend,
            ],
        )
        return Finished(str(reply[0]), int(reply[1]), str(reply[2]), int(reply[3]))

    async def credit(
        self, team_id: str, amount_micros: int, note: str, max_balance: int
    ) -> tuple[int, str] | None:
        """Change a team's balance and write its ledger entry; the new balance and the entry's
        id, or None when the team does not exist. ``BalanceOutOfRange`` (nothing written) when
        the balance would pass ``max_balance`` either way, moving away from zero."""
        reply = await self._run(
            "credit",
            keys=[redis_keys.team_record(team_id), redis_keys.ledger(team_id)],
            args=[amount_micros, note, max_balance, self._retention.ledger],
        )
        if reply[0] == "missing":
            return None
        if reply[0] == "out_of_range":
            raise BalanceOutOfRange(int(reply[1]))
        return int(reply[0]), str(reply[1])

    async def promote_retries(self, most: int) -> int:
        """Queue again the deliveries whose retry has fallen due (at most ``most``); how many."""
        reply = await self._run(
            "promote",
            keys=[redis_keys.DELIVERY_RETRIES, redis_keys.DELIVERY_STREAM],
            args=[most],
        )
        return int(reply[0])

    async def unlock(self, lock: str, token: str) -> bool:
        """Delete ``lock`` if ``token`` still holds it."""
        reply = await self._run("unlock", keys=[lock], args=[token])
        return bool(reply[0])

    async def claim_due_teams(
        self, reconcile_after: float, lease: float, limit: int
    ) -> tuple[float, list[str]]:
        """Claim up to ``limit`` teams due for reconciliation (``claim.lua``) for ``lease``
        seconds; Redis's clock now, and the teams."""
        reply = await self._run(
            "claim",
            keys=[redis_keys.RECONCILE_DUE, redis_keys.RECONCILE_CLAIMED],
            args=[reconcile_after, lease, limit],
        )
        return float(reply[0]), [str(team) for team in reply[1:]]

    async def release_teams(self, next_looks: dict[str, float | None]) -> None:
        """Release claimed teams (``release.lua``): each back on the schedule at its next look,
        or off it (None) when it has no open reservation left."""
        args: list[str] = []
        for team_id, at in next_looks.items():
            args += [team_id, "" if at is None else f"{at:.6f}"]
        await self._run(
            "release", keys=[redis_keys.RECONCILE_DUE, redis_keys.RECONCILE_CLAIMED], args=args
        )

    async def _run(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        then: Sequence[Command] = (),
    ) -> list[Any]:
        """Run script ``name``, and ``then`` the given commands in the same batch."""
        started = time.perf_counter()
        batch = [("EVALSHA", self._shas[name], len(keys), *keys, *args), *then]
        try:
            async with store_errors():
                try:
                    reply, *_ = await self._store.execute(batch)
                except ResponseError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                    await self._store.load_script(self._sources[name])
                    reply, *_ = await self._store.execute(batch)
        finally:
            self._metrics.redis_seconds.labels(name).observe(time.perf_counter() - started)
        if not isinstance(reply, list):
            raise TypeError(f"{name}.lua answered {type(reply).__name__}, not a list")
        return reply
