"""The delivery worker every gateway process runs.

Deliveries to attempt are entries of the delivery queue (``relay.queue``: a Redis stream per
shard), read by every process as members of one consumer group. An entry is acknowledged (and
deleted) once its delivery is finished with: delivered, dead-lettered, or scheduled for a retry.
Retries wait in a schedule ordered by due time (one per shard), and ``promote.lua`` puts each
back on its stream when it falls due, so a retry is sent on time by whichever process is free. An
entry left pending (its process died mid-attempt) is taken over after ``webhook_claim_idle``; the
claim walks the pending lists with a cursor, as much of them per turn as there is room for, so a
large orphaned backlog drains at the receivers' speed.

The shards are read without blocking (a blocking read cannot span slots on Redis Cluster): when
a read finds nothing, the worker waits ``IDLE_POLL_MIN``, doubling up to ``IDLE_POLL_MAX``, before
the next, so a webhook queued on an idle queue waits at most ``IDLE_POLL_MAX`` for its read. An
idle process thus sends ``SHARDS`` (8) ``XREADGROUP`` in one pipelined round trip (one per node
on a cluster) five times a second: 40 cheap commands a second, beside its housekeeping.

A short lock per delivery (released only by its holder) keeps two processes from sending the
same one at once, and the record is read again under it, so one that another process has just
finished is not sent again, nor one whose retry is not due yet: a queue entry may be a duplicate
(queued again by the reconciler, ``redis_keys.undelivered``, or by a migration), and is then
dropped. Each write of a delivery's outcome also moves or removes its ``undelivered`` deadline.

Deliveries are attempted concurrently, each as its own task, within ``Slots``: at most
``webhook_concurrency`` at once and ``webhook_target_concurrency`` to one target, so a slow or
hanging receiver holds up its own deliveries only, while the worker keeps reading the queue.
``step`` is one turn of the worker; ``telemetry.loops`` runs it for the app's lifetime.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import os
import random
import socket
import time
from collections.abc import Iterable
from secrets import token_hex
from typing import Any

import httpx
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from gateway.accounts.keys import KeyStore
from gateway.errors import FalError
from gateway.relay.outbox import DEAD, DELIVERED, PENDING, Outbox
from gateway.relay.queue import DeliveryQueue, Entry
from gateway.relay.signing import signature_headers
from gateway.relay.slots import Slots, target_of
from gateway.relay.targets import TargetPolicy, TargetRefused
from gateway.settings import Settings
from gateway.store import alerts, legacy, redis_keys
from gateway.store.multiplexed import Command, Store, hash_reply
from gateway.store.pool import store_errors
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts
from gateway.telemetry import tracing
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import OFF, Attributes, Tracing

logger = logging.getLogger(__name__)

BATCH = 32
PROMOTE_BATCH = 500
JITTER = 0.2
HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between promotions of due retries, claim walks and reports of the queue's depth."""
LEGACY_INTERVAL = 60.0
"""Seconds between looks for the queue from before sharding (``store.legacy``): processes of the
previous version may still write it during a rolling upgrade."""
IDLE_POLL_MIN = 0.01
IDLE_POLL_MAX = 0.2
"""Seconds between reads of an idle queue: from the least, doubled after each empty read."""
DUE_SLACK = 2.0
"""A delivery whose next attempt is due more than this far ahead (s) is not attempted: its queue
entry is a duplicate of the scheduled retry. The slack absorbs clocks that differ a little."""
USER_AGENT = "fal-gateway-webhooks/0.1"


def _finished(record: dict[str, str]) -> bool:
    """The delivery needs no more attempts now: delivered, dead, gone, or a retry not due."""
    if not record or record.get("status") != PENDING:
        return True
    return float(record.get("next_at") or 0) > time.time() + DUE_SLACK


def _retry_member(team_id: str, delivery_id: str) -> str:
    return f"{team_id} {delivery_id}"


class DeliveryWorker:
    def __init__(
        self,
        redis: Redis,
        store: Store,
        scripts: Scripts,
        keys: KeyStore,
        targets: TargetPolicy,
        outbox: Outbox,
        settings: Settings,
        metrics: Metrics,
        tracing: Tracing = OFF,
    ) -> None:
        self._tracing = tracing
        self._redis = redis
        self._store = store
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
        """Queue entries being handled, by ``Entry.name``."""
        self._queue = DeliveryQueue(store, outbox, self._consumer, settings.webhook_claim_idle)
        self._retention = Retention.of(settings)
        self._next_housekeeping = 0.0
        self._next_legacy = 0.0
        self._idle = IDLE_POLL_MIN
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
        then new ones), each handled by a task of its own; wait a little when there are none."""
        # Saturated, the worker still does its housekeeping every interval (and stays live).
        room = min(BATCH, await self._slots.room(HOUSEKEEPING_INTERVAL))
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
            if now >= self._next_legacy:
                self._next_legacy = now + LEGACY_INTERVAL
                await legacy.migrate(self._redis, self._scripts, self._retention)
            await self._scripts.promote_retries(PROMOTE_BATCH)
            await self._report_queue()
            self._queue.start_walk()
        if not room:
            return
        taken: list[Entry] = []
        if self._queue.walking:
            taken = await self._queue.claim(room)
        if len(taken) < room:
            taken += await self._queue.read(room - len(taken))
        self._start(taken)
        if taken or self._queue.walking:
            self._idle = IDLE_POLL_MIN
            return
        await asyncio.sleep(max(0.0, min(self._idle, self._next_housekeeping - time.monotonic())))
        self._idle = min(self._idle * 2, IDLE_POLL_MAX)

    def _start(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.name not in self._tasks:  # else one of ours, still waiting for its target
                self._slots.take()
                task = asyncio.create_task(self._handle(entry))
                self._tasks[entry.name] = task
                task.add_done_callback(functools.partial(self._done, entry.name))

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        del self._tasks[name]
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("delivery worker: %r", exc, exc_info=exc)

    async def _handle(self, entry: Entry) -> None:
        try:
            if await self._process(entry.team_id, entry.delivery_id):
                await self._queue.done(entry)
        except FalError as exc:
            logger.warning("delivery %s: %s", entry.delivery_id, exc.detail)

    async def _process(self, team_id: str, delivery_id: str) -> bool:
        """Attempt the delivery; True when its stream entry is finished with, False to leave it
        pending (claimed again later)."""
        name = redis_keys.delivery(team_id, delivery_id)
        async with store_errors():
            record = hash_reply(await self._store.call("HGETALL", name))
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
            locked, lock_ms, current = await self._store.execute(
                [("SET", lock, token, "NX", "PX", hold), ("PTTL", lock), ("HGETALL", name)]
            )
        if not locked:
            await self._schedule(team_id, delivery_id, max(int(lock_ms), 0) / 1000 + 0.1)
            return True
        try:
            record = hash_reply(current)
            if not _finished(record):
                await self._attempt(name, team_id, delivery_id, record)
            return True
        finally:
            await self._scripts.unlock(lock, token)

    async def _schedule(self, team_id: str, delivery_id: str, delay: float) -> None:
        """Queue the delivery again in ``delay`` seconds (its ``undelivered`` deadline follows)."""
        async with store_errors():
            await self._store.execute(self._retry(team_id, delivery_id, time.time() + delay))

    def _retry(self, team_id: str, delivery_id: str, due: float) -> list[Command]:
        """The commands that schedule the delivery's retry at ``due``, and its deadline after
        it (in the team's slot, first)."""
        deadline = due + self._retention.delivery_grace
        retries = redis_keys.delivery_retries(redis_keys.shard_of(team_id))
        return [
            ("ZADD", redis_keys.undelivered(team_id), repr(deadline), delivery_id),
            ("ZADD", retries, int(due * 1000), _retry_member(team_id, delivery_id)),
        ]

    async def _attempt(
        self, name: str, team_id: str, delivery_id: str, record: dict[str, str]
    ) -> None:
        """Send once and record the outcome, in a span of the job's trace."""
        attempts = int(record.get("attempts") or 0) + 1
        attributes: Attributes = {
            tracing.TEAM: team_id,
            tracing.KEY: record.get("key_id", ""),
            tracing.REQUEST_ID: record.get("request_id", ""),
            tracing.ATTEMPT: attempts,
        }
        parent = record.get("trace", "")
        with self._tracing.job_span(
            "webhook delivery", parent, attributes, SpanKind.CLIENT
        ) as span:
            outcome, status = await self._send_and_record(
                name, team_id, delivery_id, record, attempts
            )
            span.set_attribute(tracing.OUTCOME, outcome)
            if status is not None:
                span.set_attribute(tracing.HTTP_STATUS, status)

    async def _send_and_record(
        self, name: str, team_id: str, delivery_id: str, record: dict[str, str], attempts: int
    ) -> tuple[str, int | None]:
        """Send attempt number ``attempts`` and record its outcome: delivered, dead, or a retry
        scheduled; that outcome and the receiver's status code."""
        now = time.time()
        retry_in: float | None = None
        error, status = await self._send(team_id, record, now)
        self._metrics.delivery_attempts.inc()
        if error is None:
            outcome, update = DELIVERED, {"status": DELIVERED, "delivered_at": repr(time.time())}
        else:
            schedule = self._settings.webhook_retry_schedule
            if attempts > len(schedule):
                outcome, update = DEAD, {"status": DEAD}
            else:
                retry_in = schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311
                outcome, update = "retry", {"next_at": repr(now + retry_in)}
        self._metrics.deliveries.labels(outcome).inc()
        fields = {
            "attempts": str(attempts),
            "last_error": error or "",
            "last_status": "" if status is None else str(status),
            **update,
        }
        commands: list[Command] = [("HSET", name, *itertools.chain(*fields.items()))]
        if retry_in is None:  # finished with: kept for the admin API, then gone
            commands += [
                ("EXPIRE", name, math.ceil(self._settings.delivery_retention)),
                ("ZREM", redis_keys.undelivered(team_id), delivery_id),
            ]
        else:  # the record's team-slot writes first: a crash before the retry is caught
            commands += self._retry(team_id, delivery_id, now + retry_in)
        async with store_errors():
            await self._store.execute(commands)
        return outcome, status

    async def _send(
        self, team_id: str, record: dict[str, str], now: float
    ) -> tuple[str | None, int | None]:
        """POST the signed delivery; the error (None on a 2xx) and the status code. A rotated
        secret's grace is checked against ``now`` itself, not the signature's whole second."""
        signer = record.get("signer", "")
        url, headers, extensions = record["url"], dict[str, str](), dict[str, Any]()
        if signer != alerts.OPERATOR:  # the operator's own receiver is trusted wherever it is
            try:
                target = await self._targets.resolve(record["url"])
            except TargetRefused as exc:
                return str(exc), None
            url, headers, extensions = target.pinned_request()
        secrets = await self._signing_secrets(signer, team_id, record["key_id"], now)
        if signer and not secrets:  # an alert whose team removed its webhook meanwhile
            return "no secret to sign the alert with", None
        body = record["body"]
        headers |= signature_headers(record["request_id"], body, secrets, int(now))
        self._tracing.inject(headers)
        try:
            response = await self._client.post(
                url, content=body.encode(), headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}", None
        if response.is_success:
            return None, response.status_code
        return f"answered {response.status_code}", response.status_code

    async def _signing_secrets(
        self, signer: str, team_id: str, key_id: str, now: float
    ) -> list[str]:
        """The secrets that sign a delivery: the operator's alert secret, the team's, or (a
        caller's webhook) its key's."""
        if signer == alerts.OPERATOR:
            secret = self._settings.alert_webhook_secret
            return [secret.get_secret_value()] if secret else []
        if signer == alerts.TEAM:
            async with store_errors():
                found = await self._store.call(
                    "HGET", redis_keys.team_record(team_id), "alert_secret"
                )
            return [str(found)] if found else []
        return await self._keys.webhook_secrets(team_id, key_id, now)

    async def _report_queue(self) -> None:
        """Deliveries queued or waiting for a retry, and the age of the oldest queued entry."""
        queued, age = await self._queue.depth()
        self._metrics.delivery_queue.set(queued)
        self._metrics.oldest_delivery_age.set(age)
