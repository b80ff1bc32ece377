"""The delivery worker every gateway process runs.

It reads new deliveries from the stream as a member of the consumer group, and regularly claims
entries left pending longer than ``webhook_claim_idle`` (those of a process that died, and its own
retries that are waiting): a pending entry is acknowledged only once delivered or dead-lettered,
so nothing is lost when a process is killed mid-delivery. A short lock per delivery keeps two
processes from sending the same one at once; retry times live on the delivery record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from typing import Any, cast

import httpx
from redis.asyncio import Redis

from gateway.accounts.keys import KeyStore
from gateway.errors import FalError
from gateway.relay.outbox import DEAD, DELIVERED, PENDING
from gateway.relay.signing import signature_headers
from gateway.relay.targets import Target, TargetPolicy, TargetRefused
from gateway.settings import Settings
from gateway.store import redis_keys
from gateway.store.pool import RedisFields, fields_of, store_errors
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

BATCH = 32
JITTER = 0.2
USER_AGENT = "fal-gateway-webhooks/0.1"


def _target_request(target: Target) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and extensions that reach the checked address while keeping the original
    host for ``Host`` and TLS (SNI and certificate checks)."""
    url = httpx.URL(target.url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    host_header = url.netloc.decode()
    return (
        str(url.copy_with(host=address.strip("[]"))),
        {"Host": host_header},
        {"sni_hostname": target.host} if url.scheme == "https" else {},
    )


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
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        """Deliver until cancelled; Redis trouble is logged and retried, never fatal."""
        while True:
            try:
                await self._cycle()
            except FalError as exc:
                logger.warning("delivery worker: %s", exc.detail)
                await asyncio.sleep(1)

    async def _cycle(self) -> None:
        block_ms = max(1, int(min(self._settings.webhook_claim_idle, 1.0) * 1000))
        async with store_errors():
            fresh = await self._redis.xreadgroup(
                redis_keys.DELIVERY_GROUP,
                self._consumer,
                {redis_keys.DELIVERY_STREAM: ">"},
                count=BATCH,
                block=block_ms,
            )
            claimed = await self._redis.xautoclaim(
                redis_keys.DELIVERY_STREAM,
                redis_keys.DELIVERY_GROUP,
                self._consumer,
                min_idle_time=int(self._settings.webhook_claim_idle * 1000),
                start_id="0-0",
                count=BATCH,
            )
        entries: list[tuple[str, dict[str, str]]] = [
            (str(entry_id), fields_of(fields))
            for _, stream_entries in cast(list[Any], fresh or [])
            for entry_id, fields in stream_entries
        ]
        entries += [(str(i), fields_of(f)) for i, f in claimed[1] if f]
        await asyncio.gather(*(self._handle(entry_id, fields) for entry_id, fields in entries))
        await self._report_queue()

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            done = await self._process(fields["team_id"], fields["delivery_id"])
        except FalError as exc:
            logger.warning("delivery %s: %s", fields.get("delivery_id"), exc.detail)
            return
        if done:
            async with store_errors():
                await self._redis.xack(
                    redis_keys.DELIVERY_STREAM, redis_keys.DELIVERY_GROUP, entry_id
                )
                await self._redis.xdel(redis_keys.DELIVERY_STREAM, entry_id)

    async def _process(self, team_id: str, delivery_id: str) -> bool:
        """Attempt the delivery if it is due; True when its stream entry is finished with."""
        name = redis_keys.delivery(team_id, delivery_id)
        async with store_errors():
            record = fields_of(await self._redis.hgetall(name))
        if not record or record.get("status") != PENDING:
            return True
        if float(record.get("next_at") or 0) > time.time():
            return False  # a retry not due yet: stays pending, looked at again later
        lock = redis_keys.delivery_lock(team_id, delivery_id)
        hold = int((self._settings.webhook_timeout + 5) * 1000)
        async with store_errors():
            if not await self._redis.set(lock, self._consumer, nx=True, px=hold):
                return False
        try:
            return await self._attempt(name, team_id, record)
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
        url, headers, extensions = _target_request(target)
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
