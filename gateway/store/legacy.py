"""Moving the shared keys from before sharding (issue 15) to their shards, once.

The delivery queue (``LEGACY_DELIVERY_STREAM`` and its retry schedule) and the reconciler's
schedule (``LEGACY_RECONCILE_DUE`` / ``_CLAIMED``) were one structure each. Each queued entry and
retry moves to its team's shard (and the delivery onto its team's ``undelivered``, so the
reconciler stands behind it from now on), each scheduled or claimed team to its shard's schedule
(a claimed one due at once, as if its claim had lapsed). Then ``forget.lua`` removes what was
copied and deletes the old keys once empty, in one step, so an entry a process of the previous
version writes meanwhile (a rolling upgrade) waits for the next move instead of being lost.

Every process runs it when its delivery worker starts and every ``worker.LEGACY_INTERVAL``
after: one ``EXISTS`` round trip when there is nothing to move. A copy followed by a crash
before the removal is copied again: a duplicate queue entry is dropped by the worker, a duplicate
schedule entry costs one look.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from gateway.store import redis_keys
from gateway.store.pool import store_errors
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts

CHUNK = 500
"""Entries moved per round trip."""

QUEUE = (redis_keys.LEGACY_DELIVERY_STREAM, redis_keys.LEGACY_DELIVERY_RETRIES)
SCHEDULE = (redis_keys.LEGACY_RECONCILE_DUE, redis_keys.LEGACY_RECONCILE_CLAIMED)


async def migrate(redis: Redis, scripts: Scripts, retention: Retention) -> int:
    """Move whatever the old keys hold to the shards; how many entries were moved."""
    async with store_errors():
        pipe = redis.pipeline(transaction=False)
        pipe.exists(*QUEUE)
        pipe.exists(*SCHEDULE)
        queue, schedule = await pipe.execute()
        moved = 0
        while queue:  # until a forget finds nothing written meanwhile
            moved += await _move_queue(redis, scripts, retention)
            queue = await scripts.forget_moved(QUEUE, [])
        while schedule:
            moved += await _move_schedule(redis, scripts)
            schedule = await scripts.forget_moved(SCHEDULE, [])
    return moved


async def _move_queue(redis: Redis, scripts: Scripts, retention: Retention) -> int:
    """Copy the old queue's entries and retries to their shards and forget them, a chunk at a
    time, until a read finds no more."""
    moved = 0
    while True:
        pipe = redis.pipeline(transaction=False)
        pipe.xrange(QUEUE[0], count=CHUNK)
        pipe.zrange(QUEUE[1], 0, CHUNK - 1, withscores=True)
        entries, retries = await pipe.execute()
        if not entries and not retries:
            return moved
        now = time.time()
        copy = redis.pipeline(transaction=False)
        forget: list[tuple[int, str]] = []
        for entry_id, fields in entries:
            team_id, delivery_id = fields.get("team_id"), fields.get("delivery_id")
            if team_id and delivery_id:
                stream = redis_keys.delivery_stream(redis_keys.shard_of(team_id))
                copy.xadd(stream, {"team_id": team_id, "delivery_id": delivery_id})
                _undelivered(copy, team_id, delivery_id, now, retention)
            forget.append((0, str(entry_id)))
        for member, due_ms in retries:
            team_id, _, delivery_id = str(member).partition(" ")
            retry_list = redis_keys.delivery_retries(redis_keys.shard_of(team_id))
            copy.zadd(retry_list, {member: due_ms})
            _undelivered(copy, team_id, delivery_id, max(now, due_ms / 1000), retention)
            forget.append((1, str(member)))
        await copy.execute()
        await scripts.forget_moved(QUEUE, forget)
        moved += len(forget)


def _undelivered(
    pipe: Any, team_id: str, delivery_id: str, due: float, retention: Retention
) -> None:
    name = redis_keys.undelivered(team_id)
    pipe.zadd(name, {delivery_id: due + retention.delivery_grace}, nx=True)
    pipe.expire(name, retention.delivery_pending)


async def _move_schedule(redis: Redis, scripts: Scripts) -> int:
    """Copy the old schedule's teams to their shards' and forget them, a chunk at a time."""
    moved = 0
    while True:
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(SCHEDULE[0], 0, CHUNK - 1, withscores=True)
        pipe.zrange(SCHEDULE[1], 0, CHUNK - 1)
        due, claimed = await pipe.execute()
        if not due and not claimed:
            return moved
        copy = redis.pipeline(transaction=False)
        for team_id, at in [*due, *((team, 0.0) for team in claimed)]:
            shard_due = redis_keys.reconcile_due(redis_keys.shard_of(str(team_id)))
            copy.zadd(shard_due, {team_id: at}, lt=True)
        await copy.execute()
        forget = [(0, str(team)) for team, _ in due] + [(1, str(team)) for team in claimed]
        await scripts.forget_moved(SCHEDULE, forget)
        moved += len(forget)
