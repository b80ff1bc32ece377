"""The reconciler: settles jobs whose end nobody saw, and refunds submits that never reached fal.

Every gateway process runs one. Each pass takes, team by team, a Redis lock held while it sweeps
that team (so processes do not repeat each other's work) and looks at reservations older than
``reconcile_after``: a bound one is asked about at fal and settled once COMPLETED (or refunded as
lost when fal does not know it); one never bound to a fal request after ``bind_grace`` is a
submit that died half-way, and is refunded. A sync run is only named by fal when it answers: its
reservation says how long it may stay unbound (``unbound_until``), and is never refunded while
the run can still be going. It also counts open reservations for the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from gateway.errors import FalError
from gateway.jobs.finisher import Ending, Finisher, Job
from gateway.limits.settlement import ABANDONED
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors
from gateway.telemetry.metrics import Metrics
from gateway.upstream import FalUpstream

logger = logging.getLogger(__name__)

BATCH = 200
SPEND_DAYS_KEPT = 62
LOCK_TIMEOUT = 120.0


class Reconciler:
    def __init__(
        self,
        redis: Redis,
        finisher: Finisher,
        upstream: FalUpstream,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._redis = redis
        self._finisher = finisher
        self._upstream = upstream
        self._settings = settings
        self._metrics = metrics

    async def run(self) -> None:
        """Sweep every ``reconcile_interval`` until cancelled; errors are logged, never fatal."""
        while True:
            try:
                await self.sweep()
            except FalError as exc:
                logger.warning("reconciler pass failed: %s", exc.detail)
            await asyncio.sleep(self._settings.reconcile_interval)

    async def sweep(self) -> None:
        open_total = reserved_total = 0
        async with store_errors():
            team_ids = sorted(str(t) for t in await self._redis.smembers(redis_keys.TEAM_INDEX))
        for team_id in team_ids:
            count, reserved = await self._sweep_team(team_id)
            open_total += count
            reserved_total += reserved
        self._metrics.reservations_outstanding.set(open_total)
        self._metrics.reserved_micros.set(reserved_total)

    async def _sweep_team(self, team_id: str) -> tuple[int, int]:
        now = time.time()
        async with store_errors():
            count = int(await self._redis.zcard(redis_keys.open_reservations(team_id)))
            reserved = int(await self._redis.hget(redis_keys.team_record(team_id), "reserved") or 0)
            # Held only while this process sweeps the team; the timeout covers a crash mid-sweep.
            lock = self._redis.lock(redis_keys.sweep_lock(team_id), timeout=LOCK_TIMEOUT)
            if not await lock.acquire(blocking=False):
                return count, reserved
        try:
            async with store_errors():
                due = await self._redis.zrangebyscore(
                    redis_keys.open_reservations(team_id),
                    "-inf",
                    now - self._settings.reconcile_after,
                    start=0,
                    num=BATCH,
                )
            for reservation_id in due:
                try:
                    await self._check(team_id, str(reservation_id), now)
                except FalError as exc:
                    logger.warning("reservation %s not settled yet: %s", reservation_id, exc.detail)
            await self._prune_spend(team_id, now)
        finally:
            with contextlib.suppress(LockError, RedisError):
                await lock.release()
        return count, reserved

    async def _check(self, team_id: str, reservation_id: str, now: float) -> None:
        async with store_errors():
            fields = fields_of(
                await self._redis.hgetall(redis_keys.reservation(team_id, reservation_id))
            )
        if not fields or fields.get("state") == "settled":
            async with store_errors():
                await self._redis.zrem(redis_keys.open_reservations(team_id), reservation_id)
            return
        job = Job(
            team_id,
            fields["key_id"],
            reservation_id,
            fields.get("request_id", ""),
            fields["endpoint"],
            fields.get("webhook_url") or None,
        )
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

    async def _prune_spend(self, team_id: str, now: float) -> None:
        """Forget per-period spend counters too old to matter for any cap."""
        cutoff = time.strftime("%Y-%m-%d", time.gmtime(now - SPEND_DAYS_KEPT * 86400))
        async with store_errors():
            periods = await self._redis.hkeys(redis_keys.spend(team_id))
            stale = [p for p in periods if str(p).startswith("d:") and str(p)[2:] < cutoff]
            stale += [p for p in periods if str(p).startswith("m:") and str(p)[2:] < cutoff[:7]]
            if stale:
                await self._redis.hdel(redis_keys.spend(team_id), *stale)
