"""The delivery worker every gateway process runs.

Deliveries to attempt are entries of a Redis stream, read by every process as members of one
consumer group. An entry is acknowledged (and deleted) once its delivery is finished with:
delivered, dead-lettered, or scheduled for a retry. Retries wait in a schedule ordered by due
time, and ``promote.lua`` puts each back on the stream when it falls due, so a retry is sent on
time by whichever process is free. An entry left pending (its process died mid-attempt) is taken
over after ``webhook_claim_idle``; the claim walks the pending list with a cursor, as much of it
per turn as there is room for, so a large orphaned backlog drains at the receivers' speed.

A short lock per delivery (released only by its holder) keeps two processes from sending the
same one at once, and the record is read again under it, so one that another process has just
finished is not sent again.

Deliveries are attempted concurrently, each as its own task, within ``Slots``: at most
``webhook_concurrency`` at once and ``webhook_target_concurrency`` to one target, so a slow or
hanging receiver holds up its own deliveries only, while the worker keeps reading the queue.
``step`` is one turn of the worker; ``telemetry.loops`` runs it for the app's lifetime.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import random
import socket
import time
from collections.abc import Iterable
from secrets import token_hex
from typing import Any, cast

import httpx
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.accounts.keys import KeyStore
from gateway.errors import FalError
from gateway.relay.outbox import DEAD, DELIVERED, PENDING, Outbox
from gateway.relay.signing import signature_headers
from gateway.relay.slots import Slots, target_of
from gateway.relay.targets import TargetPolicy, TargetRefused
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.pool import RedisFields, fields_of, store_errors
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

BATCH = 32
PROMOTE_BATCH = 500
JITTER = 0.2
HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between promotions of due retries, claim walks and reports of the queue's depth."""
USER_AGENT = "fal-gateway-webhooks/0.1"


def _finished(record: dict[str, str]) -> bool:
    """The delivery needs no more attempts: delivered, dead, or gone."""
    return not record or record.get("status") != PENDING


def _retry_member(team_id: str, delivery_id: str) -> str:
    return f"{team_id} {delivery_id}"


class DeliveryWorker:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        keys: KeyStore,
        targets: TargetPolicy,
        outbox: Outbox,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._targets = targets
        self._outbox = outbox
        self._settings = settings
        self._metrics = metrics
        self._consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._slots = Slots(
            settings.webhook_concurrency,
            settings.webhook_target_concurrency,
            settings.webhook_backlog,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        """Stream entries being handled, by entry id."""
        self._next_housekeeping = 0.0
        self._claim_cursor: str | None = None
        """Where the walk of the pending list goes on; None: no walk under way."""
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        """Drop the attempts under way (their entries stay pending, for a later claim)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._client.aclose()

    async def step(self) -> None:
        """One turn: take as many entries as there is room for (pending ones left idle first,
        then new ones), each handled by a task of its own."""
        # Saturated, the worker still does its housekeeping every interval (and stays live).
        room = min(BATCH, await self._slots.room(HOUSEKEEPING_INTERVAL))
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
            await self._scripts.promote_retries(PROMOTE_BATCH)
            await self._report_queue()
            if self._claim_cursor is None:
                self._claim_cursor = "0-0"
        if not room:
            return
        claimed: list[tuple[str, dict[str, str]]] = []
        if self._claim_cursor is not None:
            claimed = await self._claim(room)
            self._start(claimed)
        if len(claimed) < room:
            wait = 0 if self._claim_cursor else self._next_housekeeping - time.monotonic()
            self._start(await self._read(room - len(claimed), wait))

    async def _read(self, count: int, wait: float) -> list[tuple[str, dict[str, str]]]:
        """New entries, waiting up to ``wait`` seconds for some (the group is made again if
        Redis lost it, e.g. a primary that came back empty)."""
        try:
            async with store_errors():
                fresh = await self._redis.xreadgroup(
                    redis_keys.DELIVERY_GROUP,
                    self._consumer,
                    {redis_keys.DELIVERY_STREAM: ">"},
                    count=count,
                    block=max(1, int(wait * 1000)) if wait > 0 else None,
                )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            logger.warning("delivery queue had no consumer group; creating it again")
            await self._outbox.ensure_group()
            return []
        return [
            (str(entry_id), fields_of(fields))
            for _, stream_entries in cast(list[Any], fresh or [])
            for entry_id, fields in stream_entries
        ]

    async def _claim(self, count: int) -> list[tuple[str, dict[str, str]]]:
        """Entries pending longer than ``webhook_claim_idle``, now this process's; the walk
        goes on from where the last claim stopped, and ends when it has been round."""
        try:
            async with store_errors():
                cursor, claimed, *_ = await self._redis.xautoclaim(
                    redis_keys.DELIVERY_STREAM,
                    redis_keys.DELIVERY_GROUP,
                    self._consumer,
                    min_idle_time=int(self._settings.webhook_claim_idle * 1000),
                    start_id=self._claim_cursor or "0-0",
                    count=count,
                )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._claim_cursor = None
            return []
        self._claim_cursor = None if str(cursor) == "0-0" else str(cursor)
        return [(str(i), fields_of(f)) for i, f in claimed if f]

    def _start(self, entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        for entry_id, fields in entries:
            if entry_id not in self._tasks:  # else one of ours, still waiting for its target
                self._slots.take()
                task = asyncio.create_task(self._handle(entry_id, fields))
                self._tasks[entry_id] = task
                task.add_done_callback(functools.partial(self._done, entry_id))

    def _done(self, entry_id: str, task: asyncio.Task[None]) -> None:
        del self._tasks[entry_id]
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("delivery worker: %r", exc, exc_info=exc)

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            if await self._process(fields["team_id"], fields["delivery_id"]):
                async with store_errors():
                    pipe = self._redis.pipeline(transaction=False)
                    pipe.xack(redis_keys.DELIVERY_STREAM, redis_keys.DELIVERY_GROUP, entry_id)
                    pipe.xdel(redis_keys.DELIVERY_STREAM, entry_id)
                    await pipe.execute()
        except FalError as exc:
            logger.warning("delivery %s: %s", fields.get("delivery_id"), exc.detail)

    async def _process(self, team_id: str, delivery_id: str) -> bool:
        """Attempt the delivery; True when its stream entry is finished with, False to leave it
        pending (claimed again later)."""
        name = redis_keys.delivery(team_id, delivery_id)
        async with store_errors():
            record = fields_of(await self._redis.hgetall(name))
        if _finished(record):
            return True
        target = target_of(record["url"])
        if self._slots.full(target):
            # Too many already wait for this receiver: try again once a slot may have freed.
            await self._schedule(team_id, delivery_id, self._settings.webhook_timeout)
            return True
        async with self._slots.attempt(target):
            return await self._locked_attempt(name, team_id, delivery_id)

    async def _locked_attempt(self, name: str, team_id: str, delivery_id: str) -> bool:
        """Attempt under the delivery's lock, with the record as it is now (another process
        may have attempted it while this one waited for a slot). A delivery another process is
        attempting is looked at again when that lock lapses: done by then, or its holder died."""
        lock = redis_keys.delivery_lock(team_id, delivery_id)
        token = token_hex(8)
        hold = int((self._settings.webhook_timeout + 5) * 1000)
        async with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(lock, token, nx=True, px=hold)
            pipe.pttl(lock)
            pipe.hgetall(name)
            locked, lock_ms, current = await pipe.execute()
        if not locked:
            await self._schedule(team_id, delivery_id, max(int(lock_ms), 0) / 1000 + 0.1)
            return True
        try:
            record = fields_of(current)
            if not _finished(record):
                await self._attempt(name, team_id, delivery_id, record)
            return True
        finally:
            await self._scripts.unlock(lock, token)

    async def _schedule(self, team_id: str, delivery_id: str, delay: float) -> None:
        """Queue the delivery again in ``delay`` seconds."""
        due_ms = int((time.time() + delay) * 1000)
        async with store_errors():
            await self._redis.zadd(
                redis_keys.DELIVERY_RETRIES, {_retry_member(team_id, delivery_id): due_ms}
            )

    async def _attempt(
        self, name: str, team_id: str, delivery_id: str, record: dict[str, str]
    ) -> None:
        """Send once and record the outcome: delivered, dead, or a retry scheduled."""
        attempts = int(record.get("attempts") or 0) + 1
        now = time.time()
        retry_in: float | None = None
        error, status = await self._send(team_id, record, int(now))
        self._metrics.delivery_attempts.inc()
        if error is None:
            update = {"status": DELIVERED, "delivered_at": repr(time.time())}
            self._metrics.deliveries.labels("delivered").inc()
        else:
            schedule = self._settings.webhook_retry_schedule
            if attempts > len(schedule):
                update = {"status": DEAD}
                self._metrics.deliveries.labels("dead").inc()
            else:
                retry_in = schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311
                update = {"next_at": repr(now + retry_in)}
                self._metrics.deliveries.labels("retry").inc()
        fields: RedisFields = {
            "attempts": str(attempts),
            "last_error": error or "",
            "last_status": "" if status is None else str(status),
            **update,
        }
        async with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(name, mapping=fields)
            if retry_in is None:  # finished with: kept for the admin API, then gone
                pipe.expire(name, math.ceil(self._settings.delivery_retention))
            await pipe.execute()
        if retry_in is not None:
            await self._schedule(team_id, delivery_id, now + retry_in - time.time())

    async def _send(
        self, team_id: str, record: dict[str, str], now: int
    ) -> tuple[str | None, int | None]:
        """POST the signed delivery; the error (None on a 2xx) and the status code."""
        try:
            target = await self._targets.resolve(record["url"])
        except TargetRefused as exc:
            return str(exc), None
        secrets = await self._keys.webhook_secrets(team_id, record["key_id"], now)
        body = record["body"]
        url, headers, extensions = target.pinned_request()
        headers |= signature_headers(record["request_id"], body, secrets, now)
        try:
            response = await self._client.post(
                url, content=body.encode(), headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}", None
        if response.is_success:
            return None, response.status_code
        return f"answered {response.status_code}", response.status_code

    async def _report_queue(self) -> None:
        """Deliveries queued or waiting for a retry, and the age of the oldest queued entry
        (finished entries are deleted, so the stream's first entry is the oldest waiting)."""
        async with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.xlen(redis_keys.DELIVERY_STREAM)
            pipe.zcard(redis_keys.DELIVERY_RETRIES)
            pipe.xrange(redis_keys.DELIVERY_STREAM, count=1)
            queued, retrying, first = await pipe.execute()
        self._metrics.delivery_queue.set(int(queued) + int(retrying))
        oldest = str(first[0][0]) if first else None
        age = time.time() - int(oldest.split("-")[0]) / 1000 if oldest else 0.0
        self._metrics.oldest_delivery_age.set(max(age, 0.0))
