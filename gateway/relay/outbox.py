"""Deliveries to callers' webhooks, listed and replayed. They are stored by ``finish.lua`` when a
job ends (``jobs.finisher``) and queued on their team's shard of the delivery queue
(``relay.queue``) by ``Scripts.finish`` right after."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.accounts.keys import rfc3339
from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors
from gateway.store.queueing import queue_delivery, schedule_team
from gateway.store.retention import Retention

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


def public(delivery_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """A delivery as the admin API shows it (its body is not repeated)."""
    return {
        "id": delivery_id,
        "request_id": fields.get("request_id"),
        "key_id": fields.get("key_id"),
        "team_id": fields.get("team_id"),
        "url": fields.get("url"),
        "status": fields.get("status"),
        "attempts": int(fields.get("attempts") or 0),
        "last_error": fields.get("last_error") or None,
        "last_status": int(fields["last_status"]) if fields.get("last_status") else None,
        "created_at": rfc3339(float(fields.get("created") or 0)),
        "next_attempt_at": rfc3339(float(fields["next_at"]))
        if fields.get("status") == PENDING and fields.get("next_at")
        else None,
        "delivered_at": rfc3339(float(fields["delivered_at"]))
        if fields.get("delivered_at")
        else None,
    }


class Outbox:
    def __init__(self, redis: Redis, retention: Retention) -> None:
        self._redis = redis
        self._retention = retention

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) of every shard of the queue that has none."""
        async with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for shard in range(redis_keys.SHARDS):
                stream = redis_keys.delivery_stream(shard)
                pipe.xgroup_create(stream, redis_keys.DELIVERY_GROUP, id="0", mkstream=True)
            for reply in await pipe.execute(raise_on_error=False):
                if isinstance(reply, ResponseError) and "BUSYGROUP" not in str(reply):
                    raise reply

    async def team_of(self, delivery_id: str) -> str | None:
        async with store_errors():
            team_id = await self._redis.get(redis_keys.delivery_team(delivery_id))
        return None if team_id is None else str(team_id)

    async def get(self, team_id: str, delivery_id: str) -> dict[str, Any] | None:
        async with store_errors():
            fields = fields_of(await self._redis.hgetall(redis_keys.delivery(team_id, delivery_id)))
        return public(delivery_id, fields) if fields else None

    async def for_key(self, team_id: str, key_id: str, status: str | None) -> list[dict[str, Any]]:
        async with store_errors():
            ids = [
                str(i)
                for i in await self._redis.zrevrange(
                    redis_keys.key_deliveries(team_id, key_id), 0, 999
                )
            ]
            pipe = self._redis.pipeline(transaction=False)
            for delivery_id in ids:
                pipe.hgetall(redis_keys.delivery(team_id, delivery_id))
            records = await pipe.execute()
        found = [public(i, fields_of(f)) for i, f in zip(ids, records, strict=True) if f]
        return [d for d in found if status is None or d["status"] == status]

    async def replay(self, team_id: str, delivery_id: str) -> dict[str, Any] | None:
        """Queue a delivery again from scratch (attempts reset), whatever its state; pending
        again, it is kept as long as a new one (its index entry and team lookup too).

        The team-slot writes go together, in one transaction (the record, its key's index, its
        ``undelivered`` deadline); the queue entry, the team lookup and the team's place on the
        reconcile schedule (each in a slot of its own) follow. Should those be lost, the
        reconciler's next look at the team queues it, and the audit schedules that look."""
        name = redis_keys.delivery(team_id, delivery_id)
        ttl = self._retention.delivery_pending
        async with store_errors():
            key_id = await self._redis.hget(name, "key_id")
            if key_id is None:
                return None
            now = time.time()
            index = redis_keys.key_deliveries(team_id, str(key_id))
            undelivered = redis_keys.undelivered(team_id)
            team_slot = self._redis.pipeline(transaction=True)
            team_slot.hset(name, mapping={"status": PENDING, "attempts": "0", "next_at": repr(now)})
            team_slot.expire(name, ttl)
            if key_id:  # an alert belongs to no key
                team_slot.zadd(index, {delivery_id: int(now)})
                team_slot.expire(index, ttl)
            team_slot.zadd(undelivered, {delivery_id: now + self._retention.delivery_grace})
            team_slot.expire(undelivered, ttl)
            await team_slot.execute()
            queue = self._redis.pipeline(transaction=False)
            for command in queue_delivery(team_id, delivery_id, ttl * 1000):
                queue.execute_command(*command)
            queue.execute_command(*schedule_team(team_id, now))
            await queue.execute()
        return await self.get(team_id, delivery_id)
