"""The Lua scripts, as typed methods: each builds its ``KEYS`` from ``redis_keys`` and reads its
reply into a value. Sources are ``lua/<name>.lua`` in this package, after their ``PRELUDES``.
Every key a script touches is in its ``KEYS``, and they share one hash tag: a team's
(``{<team_id>}``), one shard's of the delivery queue (``{deliveries:<n>}``) or of the
reconciler's schedule (``{reconcile:<n>}``), the pool of fal accounts' (``{upstreams}``) or the
price table's (``{prices}``), so they run on Redis Cluster too. What a team's script would write
to a shared structure (the team's place on the schedule, its new delivery's queue entry) is
sent as plain commands in the same or the next round trip; ``redis_keys.undelivered`` and the
audit cover a crash between the two.

Scripts run with EVALSHA on the process's multiplexed connection and are loaded when Redis does
not know them yet (after a restart or a flush).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from redis.exceptions import ResponseError

from gateway.store import redis_keys
from gateway.store.alerts import Alerts
from gateway.store.multiplexed import Command, Store
from gateway.store.pool import store_errors
from gateway.store.queueing import queue_delivery, schedule_team
from gateway.store.retention import SPEND_FIELDS, Retention
from gateway.store.script_values import Admission as Admission
from gateway.store.script_values import Admitted as Admitted
from gateway.store.script_values import BalanceOutOfRange as BalanceOutOfRange
from gateway.store.script_values import Ending as Ending
from gateway.store.script_values import Finished as Finished
from gateway.store.script_values import PricesSeen as PricesSeen
from gateway.store.script_values import Refused as Refused
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

NAMES = (
    "admit",
    "finish",
    "job_seen",
    "credit",
    "claim",
    "release",
    "promote",
    "unlock",
    "forget",
    "pick_account",
    "release_account",
    "account_health",
    "account_edit",
    "take_back",
    "price_set",
    "price_cancel",
    "count_failures",
)
PRELUDES = {
    name: ("alert_delivery", "team_alerts") if name in ("finish", "credit") else ("alert_delivery",)
    for name in ("finish", "credit", "account_health", "count_failures")
}
"""Sources put before a script's own: the alerts it may raise (``store.alerts``)."""


def _source(name: str) -> str:
    files = (*PRELUDES.get(name, ()), name)
    return "\n".join(
        resources.files(__package__).joinpath("lua", f"{f}.lua").read_text() for f in files
    )


def admission_keys(team_id: str, key_id: str, reservation_id: str) -> list[str]:
    """The keys of ``admit.lua`` (and of ``take_back.lua``, which undoes it)."""
    return [
        redis_keys.key_record(team_id, key_id),
        redis_keys.team_record(team_id),
        redis_keys.key_rate(team_id, key_id),
        redis_keys.team_rate(team_id),
        redis_keys.leases(team_id, key_id),
        redis_keys.reservation(team_id, reservation_id),
        redis_keys.open_reservations(team_id),
        redis_keys.spend(team_id),
    ]


class Scripts:
    """The scripts, timed per call; Redis being unreachable is a 503 (``store_errors``)."""

    def __init__(
        self, store: Store, metrics: Metrics, retention: Retention, alert_url: str = ""
    ) -> None:
        self.alerts = Alerts(store, metrics, retention, alert_url)
        """Alerts' deliveries, to ``alert_url`` (the operator's; empty: none) and teams'."""
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
        A process dying between the two leaves a reservation the audit finds. So do the reads
        of the price table's version and of Redis's clock (``PricesSeen``): on one Redis, a
        version read after the script and equal to the one the estimate was made at proves the
        script ran under it (versions only grow)."""
        t, k = a.team_id, a.key_id
        then = [schedule_team(t, time.time()), ("GET", redis_keys.PRICE_VERSION), ("TIME",)]
        reply, _, version, now = await self._run_each(
            "admit", [(admission_keys(t, k, a.reservation_id), self._admit_args(a))], then
        )
        seen = PricesSeen(int(version or 0), int(now[0]) * 1000 + int(now[1]) // 1000)
        if reply[0] != "ok":
            return Refused(str(reply[1]), int(reply[2]), int(reply[3]), seen)
        spends = [("daily", *reply[5:7]), ("monthly", *reply[7:9])]
        caps = tuple((name, int(spent), int(cap)) for name, spent, cap in spends if int(cap) > 0)
        return Admitted(int(reply[1]), int(reply[2]), int(reply[3]), int(reply[4]), caps, seen)

    async def take_back(self, team_id: str, key_id: str, reservation_id: str) -> bool:
        """Undo an admission made at a stale price (``take_back.lua``); False when its
        reservation is no longer open."""
        keys = admission_keys(team_id, key_id, reservation_id)
        return bool((await self.run("take_back", keys=keys, args=[reservation_id]))[0])

    def _admit_args(self, a: Admission) -> list[Any]:
        return [
            a.secret_hash,
            a.estimate_micros,
            a.reservation_id,
            a.lease_ttl,
            a.reservation_ttl,
            a.key_policy_version,
            a.team_policy_version,
            a.endpoint_id,
            a.key_id,
            a.unbound_for,
            self._retention.spend,
            SPEND_FIELDS,
            a.price,
        ]

    async def finish(self, e: Ending) -> Finished:
        """Settle, remember the final status and record the caller's webhook, together; then,
        for a new delivery, queue it (a second round trip: the queue is in another slot).

        The usage hash is named for the day the reservation was admitted, which only the
        script reads; it is passed for today (the usual case), and the script, checking it
        before writing anything, names the right day when the job was admitted on another."""
        reply = await self._finish(e, datetime.now(UTC).date().isoformat())
        if reply[0] == "wrong_day":
            reply = await self._finish(e, str(reply[1]))
        if reply[0] == "wrong_day":
            raise RuntimeError(f"finish.lua named two days for reservation {e.reservation_id}")
        finished = Finished(str(reply[0]), int(reply[1]), str(reply[2]), int(reply[3]))
        ttl_ms = self._retention.delivery_pending * 1000
        delivery_id = e.request_id or e.reservation_id
        new = queue_delivery(e.team_id, delivery_id, ttl_ms) if finished.delivery == "new" else []
        await self.alerts.queue(e.team_id, reply[-2:], new)
        return finished

    async def _finish(self, e: Ending, day: str) -> list[Any]:
        t = e.team_id
        reservation = redis_keys.reservation(t, e.reservation_id)
        alert_keys, alert_args = self.alerts.prepare(t, 4)
        return await self.run(
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
                redis_keys.undelivered(t),
                redis_keys.usage_day(t, day),
                *alert_keys,
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
                self._retention.delivery_grace,
                "1" if e.failed else "0",
                *alert_args,
                e.trace,
                *e.usage_fields,
            ],
        )

    async def job_seen(self, team_id: str, request_id: str, field: str, *also: str) -> bool:
        """Note when the job was first seen so (``field``: ``started_ms``, ``cancel_ms``) on its
        request record and the records ``also`` names, unless it was; whether this did."""
        keys = [redis_keys.request_record(team_id, request_id), *also]
        reply = await self.run("job_seen", keys=keys, args=[field])
        return bool(int(reply[0]))

    async def credit(
        self, team_id: str, amount_micros: int, note: str, max_balance: int
    ) -> tuple[int, str] | None:
        """Change a team's balance and write its ledger entry; the new balance and the entry's
        id, or None when the team does not exist. ``BalanceOutOfRange`` (nothing written) when
        the balance would pass ``max_balance`` either way, moving away from zero."""
        keys, args = self.alerts.prepare(team_id, 2)
        team, ledger = redis_keys.team_record(team_id), redis_keys.ledger(team_id)
        reply = await self.run(
            "credit",
            keys=[team, ledger, redis_keys.undelivered(team_id), *keys],
            args=[amount_micros, note, max_balance, self._retention.ledger, *args],
        )
        if reply[0] == "missing":
            return None
        if reply[0] == "out_of_range":
            raise BalanceOutOfRange(int(reply[1]))
        await self.alerts.queue(team_id, reply[-2:])
        return int(reply[0]), str(reply[1])

    async def promote_retries(self, most: int) -> int:
        """Queue again the deliveries whose retry has fallen due (at most ``most`` a shard),
        every shard in one batch; how many."""
        calls = [
            ([redis_keys.delivery_retries(shard), redis_keys.delivery_stream(shard)], [most])
            for shard in range(redis_keys.SHARDS)
        ]
        return sum(int(reply[0]) for reply in await self._run_each("promote", calls))

    async def unlock(self, lock: str, token: str) -> bool:
        """Delete ``lock`` if ``token`` still holds it."""
        reply = await self.run("unlock", keys=[lock], args=[token])
        return bool(reply[0])

    async def claim_due_teams(
        self, shards: Sequence[int], reconcile_after: float, lease: float, limit: int
    ) -> tuple[float, dict[int, list[str]]]:
        """Claim up to ``limit`` teams due for reconciliation from each of ``shards``
        (``claim.lua``, all in one batch) for ``lease`` seconds; Redis's clock now, and the
        teams claimed in each shard."""
        calls = [
            (
                [redis_keys.reconcile_due(shard), redis_keys.reconcile_claimed(shard)],
                [reconcile_after, lease, limit],
            )
            for shard in shards
        ]
        replies = await self._run_each("claim", calls)
        now = max((float(reply[0]) for reply in replies), default=time.time())
        return now, {
            shard: [str(team) for team in reply[1:]]
            for shard, reply in zip(shards, replies, strict=True)
        }

    async def release_teams(self, next_looks: dict[str, float | None]) -> None:
        """Release claimed teams (``release.lua``, once per shard they are in): each back on
        the schedule at its next look, or off it (None) when it has no open work left."""
        by_shard: dict[int, list[str]] = {}
        for team_id, at in next_looks.items():
            args = by_shard.setdefault(redis_keys.shard_of(team_id), [])
            args += [team_id, "" if at is None else f"{at:.6f}"]
        calls = [
            ([redis_keys.reconcile_due(shard), redis_keys.reconcile_claimed(shard)], args)
            for shard, args in sorted(by_shard.items())
        ]
        if calls:
            await self._run_each("release", calls)

    async def forget_moved(self, keys: Sequence[str], moved: Sequence[tuple[int, str]]) -> int:
        """Remove entries copied elsewhere from ``keys`` (streams or sorted sets of one slot;
        ``moved`` pairs a key's index in ``keys`` with an entry id or member), then delete the
        keys once all are empty (``forget.lua``); how many entries are left."""
        args = [str(part) for index, member in moved for part in (index + 1, member)]
        reply = await self.run("forget", keys=keys, args=args)
        return int(reply[0])

    async def run(
        self,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        then: Sequence[Command] = (),
    ) -> list[Any]:
        """Run script ``name``, and ``then`` the given commands in the same batch."""
        reply: list[Any] = (await self._run_each(name, [(keys, args)], then))[0]
        return reply

    async def _run_each(
        self,
        name: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
        then: Sequence[Command] = (),
    ) -> list[Any]:
        """Run script ``name`` once for each ``(keys, args)`` of ``calls``, and ``then`` the
        given commands, in one batch; each run's reply, then each command's."""
        started = time.perf_counter()
        sha = self._shas[name]
        batch: list[Command] = [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls]
        batch += then
        try:
            async with store_errors():
                try:
                    replies = await self._store.execute(batch)
                except ResponseError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                    await self._store.load_script(self._sources[name])
                    replies = await self._store.execute(batch)
        finally:
            self._metrics.redis_seconds.labels(name).observe(time.perf_counter() - started)
        for reply in replies[: len(calls)]:
            if not isinstance(reply, list):
                raise TypeError(f"{name}.lua answered {type(reply).__name__}, not a list")
        return replies
