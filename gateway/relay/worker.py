"""The delivery worker every gateway process runs.

It reads new deliveries from the stream as a member of the consumer group, and regularly claims
entries left pending longer than ``webhook_claim_idle`` (those of a process that died, and its own
retries that are waiting): a pending entry is acknowledged only once delivered or dead-lettered,
so nothing is lost when a process is killed mid-delivery. A short lock per delivery keeps two
processes from sending the same one at once, and the record is read again under it, so one that
another process has just finished is not sent again; retry times live on the delivery record.

Deliveries are attempted concurrently, each as its own task, within ``Slots``: at most
``webhook_concurrency`` at once and ``webhook_target_concurrency`` to one target, so a slow or
hanging receiver holds up its own deliveries only, while the worker keeps reading the queue.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import time
from collections.abc import Iterable
from typing import Any, cast

import httpx
from redis.asyncio import Redis

from gateway.accounts.keys import KeyStore
from gateway.errors import FalError
from gateway.relay.outbox import DEAD, DELIVERED, PENDING
from gateway.relay.signing import signature_headers
from gateway.relay.slots import Slots, target_of
from gateway.relay.targets import TargetPolicy, TargetRefused
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.pool import RedisFields, fields_of, store_errors
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

BATCH = 32
JITTER = 0.2
HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between claims of idle entries and reports of the queue's depth."""
USER_AGENT = "fal-gateway-webhooks/0.1"


def _due(record: dict[str, str]) -> bool | None:
    """None when the delivery is to be attempted now; else whether its entry is finished with
    (True: delivered, dead or gone; False: a retry not due yet, looked at again later)."""
    if not record or record.get("status") != PENDING:
        return True
    if float(record.get("next_at") or 0) > time.time():
        return False
    return None


class DeliveryWorker:
    def __init__(
        self,
        redis: Redis,
        keys: KeyStore,
        targets: TargetPolicy,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._targets = targets
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
        self._housekept = 0.0
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        """Deliver until cancelled; Redis trouble is logged and retried, never fatal. Attempts
        under way when cancelled are dropped: their entries stay pending for a later claim."""
        try:
            while True:
                try:
                    await self._cycle()
                except FalError as exc:
                    logger.warning("delivery worker: %s", exc.detail)
                    await asyncio.sleep(1)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _cycle(self) -> None:
        """Take as many entries as there is room for, each handled by a task of its own."""
        count = min(BATCH, await self._slots.room())
        block_ms = max(1, int(min(self._settings.webhook_claim_idle, 1.0) * 1000))
        async with store_errors():
            fresh = await self._redis.xreadgroup(
                redis_keys.DELIVERY_GROUP,
                self._consumer,
                {redis_keys.DELIVERY_STREAM: ">"},
                count=count,
                block=block_ms,
            )
        self._start(
            (str(entry_id), fields_of(fields))
            for _, stream_entries in cast(list[Any], fresh or [])
            for entry_id, fields in stream_entries
        )
        if time.monotonic() - self._housekept >= HOUSEKEEPING_INTERVAL:
            self._housekept = time.monotonic()
            self._start(await self._claim(count))
            await self._report_queue()

    def _start(self, entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        for entry_id, fields in entries:
            if entry_id not in self._tasks:  # else one of ours, still waiting for its target
                self._slots.take()
                task = asyncio.create_task(self._handle(entry_id, fields))
                self._tasks[entry_id] = task
                task.add_done_callback(functools.partial(self._finished, entry_id))

    async def _claim(self, count: int) -> list[tuple[str, dict[str, str]]]:
        """Entries pending longer than ``webhook_claim_idle``, now this process's."""
        async with store_errors():
            claimed = await self._redis.xautoclaim(
                redis_keys.DELIVERY_STREAM,
                redis_keys.DELIVERY_GROUP,
                self._consumer,
                min_idle_time=int(self._settings.webhook_claim_idle * 1000),
                start_id="0-0",
                count=count,
            )
        return [(str(i), fields_of(f)) for i, f in claimed[1] if f]

    def _finished(self, entry_id: str, task: asyncio.Task[None]) -> None:
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
        """Attempt the delivery if it is due; True when its stream entry is finished with."""
        name = redis_keys.delivery(team_id, delivery_id)
        async with store_errors():
            record = fields_of(await self._redis.hgetall(name))
        due = _due(record)
        if due is not None:
            return due
        target = target_of(record["url"])
        if self._slots.full(target):
            return False  # stays pending, claimed again later
        async with self._slots.attempt(target):
            return await self._locked_attempt(name, team_id, delivery_id)

    async def _locked_attempt(self, name: str, team_id: str, delivery_id: str) -> bool:
        """Attempt under the delivery's lock, with the record as it is now (another process
        may have attempted it while this one waited for a slot)."""
        lock = redis_keys.delivery_lock(team_id, delivery_id)
        hold = int((self._settings.webhook_timeout + 5) * 1000)
        async with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(lock, self._consumer, nx=True, px=hold)
            pipe.hgetall(name)
            locked, current = await pipe.execute()
        if not locked:
            return False
        try:
            record = fields_of(current)
            due = _due(record)
            return due if due is not None else await self._attempt(name, team_id, record)
        finally:
            async with store_errors():
                await self._redis.delete(lock)

    async def _attempt(self, name: str, team_id: str, record: dict[str, str]) -> bool:
        attempts = int(record.get("attempts") or 0) + 1
        now = time.time()
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
                delay = schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311
                update = {"next_at": repr(now + delay)}
                self._metrics.deliveries.labels("retry").inc()
        fields: RedisFields = {
            "attempts": str(attempts),
            "last_error": error or "",
            "last_status": "" if status is None else str(status),
            **update,
        }
        async with store_errors():
            await self._redis.hset(name, mapping=fields)
        return update.get("status") in (DELIVERED, DEAD)

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
        async with store_errors():
            summary = await self._redis.xpending(
                redis_keys.DELIVERY_STREAM, redis_keys.DELIVERY_GROUP
            )
            depth = await self._redis.xlen(redis_keys.DELIVERY_STREAM)
        self._metrics.delivery_queue.set(depth)
        oldest = summary.get("min") if summary else None
        age = time.time() - int(str(oldest).split("-")[0]) / 1000 if oldest else 0.0
        self._metrics.oldest_delivery_age.set(max(age, 0.0))
