"""The reconciler: settles jobs whose end nobody saw, and refunds submits that never reached fal.

A reservation older than ``reconcile_after`` is checked: a bound one is asked about at fal and
settled once COMPLETED (or refunded as lost when fal does not know it); one never bound to a fal
request after ``bind_grace`` is a submit that died half-way, and is refunded. A sync run is only
named by fal when it answers: its reservation says how long it may stay unbound
(``unbound_until``), and is never refunded while the run can still be going.

Its cost follows open work, not the number of teams. Teams that may have open reservations are
on a schedule every process shares (``RECONCILE_DUE``, see ``redis_keys``): each admission puts
its team there, in the same round trip. A pass claims due teams (``claim.lua``: they move to
``RECONCILE_CLAIMED`` under a lease, so another process gets other teams), reads their due
reservations pipelined, checks them, and releases the teams (``release.lua``) at their next look:
the admission time of the oldest open reservation, or one ``reconcile_interval`` from now when a
due one is still open; a team with nothing open leaves the schedule. An idle fleet's pass is a
handful of commands, whatever the number of teams.

Why no reservation is forgotten:

- An admission racing a pass: its ``ZADD`` either lands before the claim (the claim takes the
  team; the pass's read of the open set, which comes after, sees the reservation) or after it
  (the team is then on the schedule again, and the release only lowers its time, never removes
  it). The same holds when the admission comes after the pass read the open set.
- A pass that dies: its claims lapse after ``reconcile_lease`` and are due again; checks are
  idempotent (``finish.lua``), so a pass overrunning its lease only repeats work.
- A process that dies between ``admit.lua`` and its ``ZADD``, or reservations older than the
  schedule: the audit (``_audit``), every ``reconcile_audit_interval`` by one process, walks
  every team's open set and puts teams with open reservations back on the schedule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError

from gateway.errors import FalError
from gateway.jobs.finisher import Ending, Finisher, Job
from gateway.limits.settlement import ABANDONED
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.multiplexed import Command, Store, hash_reply
from gateway.store.pool import store_errors
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics
from gateway.upstream import FalUpstream

logger = logging.getLogger(__name__)

TEAMS_PER_CLAIM = 100
"""Teams one claim takes: the unit of work between releases, and of cancellation."""
BATCH = 200
"""Due reservations of one team checked per pass (more wait for the next pass)."""
CHECKS_AT_ONCE = 8
"""Reservations of one claim checked concurrently (each may call fal)."""
COMMANDS_PER_BATCH = 500
"""Commands sent in one pipelined round trip."""
RELEASE_TIMEOUT = 2.0
"""How long releasing claims may take when a pass fails or is cancelled (else they lapse)."""


class Reconciler:
    def __init__(
        self,
        store: Store,
        scripts: Scripts,
        finisher: Finisher,
        upstream: FalUpstream,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._scripts = scripts
        self._finisher = finisher
        self._upstream = upstream
        self._settings = settings
        self._metrics = metrics

    async def sweep(self) -> None:
        """One pass: the audit when it is this process's turn, every due team, the gauges."""
        if await self._audit_turn():
            await self._audit()
        while True:
            async with store_errors():
                now, teams = await self._scripts.claim_due_teams(
                    self._settings.reconcile_after, self._settings.reconcile_lease, TEAMS_PER_CLAIM
                )
            if teams:
                await self._reconcile(now, teams)
            if len(teams) < TEAMS_PER_CLAIM:
                break
        await self._count_open()

    async def _reconcile(self, now: float, teams: list[str]) -> None:
        """Check the claimed ``teams``' due reservations, then release the teams."""
        released = False
        try:
            await self._check_due(now, teams)
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
            )
            jobs.append((job, fields))
        await self._pipelined(gone)
        limit = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def check(job: Job, fields: dict[str, str]) -> None:
            async with limit:
                try:
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
            return
        response = await self._upstream.status(job.app_id, job.request_id, logs=False)
        if response.status_code == 404 or (
            response.is_success and response.json().get("status") == "COMPLETED"
        ):
            await self._finisher.fetch_and_finish(job)

    async def _next_looks(self, now: float, teams: list[str]) -> dict[str, float | None]:
        """When each team needs its next look: see the module docstring."""
        after = self._settings.reconcile_after
        oldest = await self._oldest_open(teams)
        looks: dict[str, float | None] = {}
        for team_id, reply in zip(teams, oldest, strict=True):
            if not reply:
                looks[team_id] = None
            elif float(reply[1]) <= now - after:  # checked and still open, or beyond BATCH
                looks[team_id] = now + self._settings.reconcile_interval - after
            else:
                looks[team_id] = float(reply[1])
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
        expired (``RECONCILE_AUDIT`` is held for the whole interval, never released)."""
        interval = max(1, round(self._settings.reconcile_audit_interval))
        async with store_errors():
            taken = await self._store.call(
                "SET", redis_keys.RECONCILE_AUDIT, "1", "NX", "EX", interval
            )
        return taken is not None

    async def _audit(self) -> None:
        """Put every team with open reservations on the schedule (at its oldest one's time)."""
        cursor = "0"
        audited = rescheduled = 0
        while True:
            async with store_errors():
                cursor, teams = await self._store.call(
                    "SSCAN", redis_keys.TEAM_INDEX, cursor, "COUNT", COMMANDS_PER_BATCH
                )
            oldest = await self._oldest_open(teams)
            schedule: list[Command] = [
                ("ZADD", redis_keys.RECONCILE_DUE, "LT", reply[1], team)
                for team, reply in zip(teams, oldest, strict=True)
                if reply
            ]
            await self._pipelined(schedule)
            audited += len(teams)
            rescheduled += len(schedule)
            if cursor == "0":
                break
        logger.info("reconciler audit: %d teams, %d with open reservations", audited, rescheduled)

    async def _count_open(self) -> None:
        """Set the gauges from the teams on the schedule, the only ones with open reservations."""
        async with store_errors():
            due, claimed = await self._store.execute(
                [
                    ("ZRANGE", redis_keys.RECONCILE_DUE, 0, -1),
                    ("ZRANGE", redis_keys.RECONCILE_CLAIMED, 0, -1),
                ]
            )
        teams = sorted({*due, *claimed})
        counts = await self._pipelined(
            command
            for t in teams
            for command in (
                ("ZCARD", redis_keys.open_reservations(t)),
                ("HGET", redis_keys.team_record(t), "reserved"),
            )
        )
        self._metrics.reservations_outstanding.set(sum(int(c) for c in counts[::2]))
        self._metrics.reserved_micros.set(sum(int(r or 0) for r in counts[1::2]))

    async def _oldest_open(self, teams: list[str]) -> list[Any]:
        """For each team, ``[reservation id, admission time]`` of its oldest open reservation,
        or ``[]`` when it has none."""
        return await self._pipelined(
            ("ZRANGE", redis_keys.open_reservations(t), 0, 0, "WITHSCORES") for t in teams
        )

    async def _pipelined(self, commands: Iterable[Command]) -> list[Any]:
        """Replies to ``commands``, sent ``COMMANDS_PER_BATCH`` to a round trip."""
        pending = list(commands)
        replies: list[Any] = []
        for start in range(0, len(pending), COMMANDS_PER_BATCH):
            async with store_errors():
                replies += await self._store.execute(pending[start : start + COMMANDS_PER_BATCH])
        return replies
