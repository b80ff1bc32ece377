"""The reconciler: settles jobs whose end nobody saw, and refunds submits that never reached fal.

A reservation older than ``reconcile_after`` is checked: a bound one is asked about at fal and
settled once COMPLETED (or refunded as lost when fal does not know it); one never bound to a fal
request after ``bind_grace`` is a submit that died half-way, and is refunded. A sync run is only
named by fal when it answers: its reservation says how long it may stay unbound
(``unbound_until``), and is never refunded while the run can still be going.

The same look at a team queues again its deliveries whose queue entry was lost
(``relay.undelivered``): a team stays on the schedule while it has deliveries not attempted.

Its cost follows open work, not the number of teams. Teams that may have open reservations or
undelivered deliveries are on a schedule every process shares, split over ``redis_keys.SHARDS``
shards (``reconcile_due``): each admission puts its team on its shard's, in the same round trip
(before the job can finish, so its delivery is covered too). A pass claims due teams of every
shard in one batch (``claim.lua`` per shard: they move to ``reconcile_claimed`` under a lease, so
another process gets other teams), reads their due reservations pipelined, checks them, queues
their lost deliveries, and releases the teams (``release.lua``) at their next look: the earliest
of the oldest open reservation's admission time and the earliest delivery deadline (or one
``reconcile_interval`` from now when due work is left); a team with nothing open leaves the
schedule. An idle fleet's pass is a handful of commands a shard, whatever the number of teams.

Why no reservation is forgotten:

- An admission racing a pass: its ``ZADD`` either lands before the claim (the claim takes the
  team; the pass's read of the open set, which comes after, sees the reservation) or after it
  (the team is then on the schedule again, and the release only lowers its time, never removes
  it). The same holds when the admission comes after the pass read the open set.
- A pass that dies: its claims lapse after ``reconcile_lease`` and are due again; checks are
  idempotent (``finish.lua``), so a pass overrunning its lease only repeats work.
- A process that dies between ``admit.lua`` and its ``ZADD``, or reservations older than the
  schedule: the audit (``_audit``), every ``reconcile_audit_interval`` by one process, walks
  every team's open set and undelivered deliveries and puts teams with either back on the
  schedule.
- A team's open set is read before its undelivered deliveries: a reservation settled in between
  had its delivery listed by the same script, so one of the two reads sees the work.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError

from gateway.accounts.requests import CANCEL_ASKED
from gateway.catalog.pricing import Price
from gateway.errors import FalError
from gateway.jobs.finisher import Ending, Finisher, Job
from gateway.limits.settlement import ABANDONED
from gateway.relay.undelivered import requeue_overdue
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.multiplexed import Command, Store, hash_reply
from gateway.store.pool import store_errors
from gateway.store.queueing import schedule_team
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import OFF, Tracing
from gateway.upstream import FalUpstream
from gateway.upstream.pool import AccountPool

logger = logging.getLogger(__name__)

TEAMS_PER_CLAIM = 100
"""Teams one claim takes (spread over the shards): the unit of work between releases, and of
cancellation."""
BATCH = 200
"""Due reservations of one team checked per pass (more wait for the next pass)."""
CHECKS_AT_ONCE = 8
"""Reservations of one claim checked concurrently (each may call fal)."""
COMMANDS_PER_BATCH = 500
"""Commands sent in one pipelined round trip."""
RELEASE_TIMEOUT = 2.0
"""How long releasing claims may take when a pass fails or is cancelled (else they lapse)."""


def _times(opened: float | None, deadline: float | None, after: float) -> list[float]:
    """Schedule times (looked at ``after`` later) for a team's oldest open reservation and its
    earliest delivery deadline, of those it has."""
    times = [] if opened is None else [opened]
    return times if deadline is None else [*times, deadline - after]


class Reconciler:
    def __init__(
        self,
        store: Store,
        scripts: Scripts,
        finisher: Finisher,
        upstream: FalUpstream,
        accounts: AccountPool,
        settings: Settings,
        metrics: Metrics,
        tracing: Tracing = OFF,
    ) -> None:
        self._tracing = tracing
        self._store = store
        self._scripts = scripts
        self._finisher = finisher
        self._upstream = upstream
        self._accounts = accounts
        self._settings = settings
        self._metrics = metrics
        self._retention = Retention.of(settings)

    async def sweep(self) -> None:
        """One pass: the audit when it is this process's turn, every due team, the gauges.

        Every shard's due teams are claimed in one batch, ``TEAMS_PER_CLAIM`` spread over them,
        then checked together; shards that had more are claimed from again."""
        if await self._audit_turn():
            await self._audit()
        shards = list(range(redis_keys.SHARDS))
        share = math.ceil(TEAMS_PER_CLAIM / redis_keys.SHARDS)
        now = time.time()
        while shards:
            async with store_errors():
                now, claimed = await self._scripts.claim_due_teams(
                    shards, self._settings.reconcile_after, self._settings.reconcile_lease, share
                )
            teams = [team for shard_teams in claimed.values() for team in shard_teams]
            if teams:
                with self._tracing.span("reconciler pass", {"gateway.teams": len(teams)}):
                    await self._reconcile(now, teams)
            shards = [shard for shard, got in claimed.items() if len(got) == share]
        await self._count_open(now)

    async def _reconcile(self, now: float, teams: list[str]) -> None:
        """Check the claimed ``teams``' due reservations, then release the teams."""
        released = False
        try:
            await self._check_due(now, teams)
            await requeue_overdue(self._pipelined, now, teams, self._retention)
            next_looks = await self._next_looks(now, teams)
            async with store_errors():
                await self._scripts.release_teams(next_looks)
            released = True
        finally:
            if not released:  # failed or cancelled: due again now rather than when claims lapse
                await self._release_soon(dict.fromkeys(teams, now - self._settings.reconcile_after))

    async def _check_due(self, now: float, teams: list[str]) -> None:
        cutoff = now - self._settings.reconcile_after
        due_ids = await self._pipelined(
            ("ZRANGEBYSCORE", redis_keys.open_reservations(t), "-inf", cutoff, "LIMIT", 0, BATCH)
            for t in teams
        )
        due = [(team, str(r)) for team, ids in zip(teams, due_ids, strict=True) for r in ids]
        records = await self._pipelined(("HGETALL", redis_keys.reservation(*d)) for d in due)
        gone: list[Command] = []
        jobs: list[tuple[Job, dict[str, str]]] = []
        for (team_id, reservation_id), raw in zip(due, records, strict=True):
            fields = hash_reply(raw)
            if not fields or fields.get("state") == "settled":
                gone.append(("ZREM", redis_keys.open_reservations(team_id), reservation_id))
                continue
            job = Job(
                team_id,
                fields["key_id"],
                reservation_id,
                fields.get("request_id", ""),
                fields["endpoint"],
                fields.get("webhook_url") or None,
                fields.get("account", ""),
                bool(fields.get(CANCEL_ASKED)),
                Price.decode(fields.get("price")),
                fields.get("trace", ""),
            )
            jobs.append((job, fields))
        await self._pipelined(gone)
        limit = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def check(job: Job, fields: dict[str, str]) -> None:
            async with limit:
                try:
                    with self._tracing.job_span("reconcile job", job.trace, job.attributes):
                        await self._check(job, fields, now)
                except FalError as exc:
                    detail = exc.detail
                    logger.warning("reservation %s not settled yet: %s", job.reservation_id, detail)

        async with asyncio.TaskGroup() as group:
            for job, fields in jobs:
                group.create_task(check(job, fields))

    async def _check(self, job: Job, fields: dict[str, str], now: float) -> None:
        if not job.request_id:
            created = float(fields.get("created", now))
            running_until = float(fields.get("unbound_until") or 0)
            if now > max(created + self._settings.bind_grace, running_until):
                await self._finisher.finish(job, Ending(ABANDONED))
                # Its account was never recorded: give back whichever slot it may hold.
                await self._accounts.release_everywhere(job.reservation_id)
            return
        credential = await self._accounts.credential(job.account)
        response = await self._upstream.status(credential, job.app_id, job.request_id, logs=False)
        if response.status_code == 404 or (
            response.is_success and response.json().get("status") == "COMPLETED"
        ):
            await self._finisher.fetch_and_finish(job)

    async def _next_looks(self, now: float, teams: list[str]) -> dict[str, float | None]:
        """When each team needs its next look: see the module docstring."""
        after = self._settings.reconcile_after
        soon = now + self._settings.reconcile_interval - after
        looks: dict[str, float | None] = {}
        for team_id, (opened, deadline) in zip(teams, await self._first_work(teams), strict=True):
            # Work still there once due (checked and still open, beyond BATCH, or still
            # overdue) is looked at again in one interval.
            times = _times(opened, deadline, after)
            looks[team_id] = min((soon if t <= now - after else t for t in times), default=None)
        return looks

    async def _release_soon(self, next_looks: dict[str, float | None]) -> None:
        """Release claims within ``RELEASE_TIMEOUT``; when that fails, they lapse by themselves."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await self._scripts.release_teams(next_looks)
        except (TimeoutError, RedisError, FalError) as exc:
            logger.warning("reconciler claims left to lapse: %r", exc)

    async def _audit_turn(self) -> bool:
        """Whether this process audits now: the first to ask once the last audit's turn
        expired (``RECONCILE_AUDIT`` is held for the whole interval, never released). The
        last audit's count of teams below their threshold is read in the same round trip."""
        interval = max(1, round(self._settings.reconcile_audit_interval))
        async with store_errors():
            taken, low = await self._store.execute(
                [
                    ("SET", redis_keys.RECONCILE_AUDIT, "1", "NX", "EX", interval),
                    ("GET", redis_keys.TEAMS_LOW_BALANCE),
                ]
            )
        if low is not None:
            self._metrics.teams_low_balance.set(int(low))
        return taken is not None

    async def _audit(self) -> None:
        """Put every team with open reservations or undelivered deliveries on the schedule (at
        its earliest look), and the pool's alerts' owner with undelivered ones; count the teams
        below their low-balance threshold."""
        cursor = "0"
        audited = rescheduled = low = 0
        first = True
        while True:
            async with store_errors():
                cursor, teams = await self._store.call(
                    "SSCAN", redis_keys.TEAM_INDEX, cursor, "COUNT", COMMANDS_PER_BATCH
                )
            low += await self._count_low(teams)
            if first:
                teams, first = [*teams, redis_keys.UPSTREAM_ALERTS], False
            after = self._settings.reconcile_after
            looks = [
                (team, min(_times(opened, deadline, after), default=None))
                for team, (opened, deadline) in zip(
                    teams, await self._first_work(teams), strict=True
                )
            ]
            schedule = [schedule_team(team, at) for team, at in looks if at is not None]
            await self._pipelined(schedule)
            audited += len(teams)
            rescheduled += len(schedule)
            if cursor == "0":
                break
        logger.info("reconciler audit: %d teams, %d with open work", audited, rescheduled)
        self._metrics.teams_low_balance.set(low)
        kept = 3 * max(1, round(self._settings.reconcile_audit_interval))
        async with store_errors():
            await self._store.call("SET", redis_keys.TEAMS_LOW_BALANCE, low, "EX", kept)

    async def _count_low(self, teams: list[str]) -> int:
        """How many of ``teams`` have a balance below their low-balance threshold."""
        replies = await self._pipelined(
            ("HMGET", redis_keys.team_record(t), "balance", "low_balance") for t in teams
        )
        return sum(
            1
            for balance, threshold in replies
            if int(threshold or 0) > 0 and int(balance or 0) < int(threshold)
        )

    async def _count_open(self, now: float) -> None:
        """Set the gauges from the teams on the schedule, the only ones with open reservations
        (``now``: Redis's time, which admission times are in)."""
        async with store_errors():
            scheduled = await self._store.execute(
                [
                    ("ZRANGE", name(shard), 0, -1)
                    for shard in range(redis_keys.SHARDS)
                    for name in (redis_keys.reconcile_due, redis_keys.reconcile_claimed)
                ]
            )
        teams = sorted({team for teams in scheduled for team in teams})
        counts = await self._pipelined(
            command
            for t in teams
            for command in (
                ("ZCARD", redis_keys.open_reservations(t)),
                ("HGET", redis_keys.team_record(t), "reserved"),
                ("ZRANGE", redis_keys.open_reservations(t), 0, 0, "WITHSCORES"),
            )
        )
        self._metrics.reservations_outstanding.set(sum(int(c) for c in counts[::3]))
        self._metrics.reserved_micros.set(sum(int(r or 0) for r in counts[1::3]))
        oldest = min((float(first[1]) for first in counts[2::3] if first), default=now)
        self._metrics.oldest_reservation_age.set(max(0.0, now - oldest))

    async def _first_work(self, teams: list[str]) -> list[tuple[float | None, float | None]]:
        """For each team, the admission time of its oldest open reservation and the earliest
        deadline of its undelivered deliveries (None: none), read in this order."""
        replies = await self._pipelined(
            ("ZRANGE", name(t), 0, 0, "WITHSCORES")
            for t in teams
            for name in (redis_keys.open_reservations, redis_keys.undelivered)
        )
        return [
            (float(opened[1]) if opened else None, float(listed[1]) if listed else None)
            for opened, listed in zip(replies[0::2], replies[1::2], strict=True)
        ]

    async def _pipelined(self, commands: Iterable[Command]) -> list[Any]:
        """Replies to ``commands``, sent ``COMMANDS_PER_BATCH`` to a round trip."""
        pending = list(commands)
        replies: list[Any] = []
        for start in range(0, len(pending), COMMANDS_PER_BATCH):
            async with store_errors():
                replies += await self._store.execute(pending[start : start + COMMANDS_PER_BATCH])
        return replies
