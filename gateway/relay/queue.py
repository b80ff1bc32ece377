"""The delivery queue as one process reads it: ``redis_keys.SHARDS`` streams, one consumer group.

A team's deliveries are queued on its shard's stream (``redis_keys.delivery_stream``), so on
Redis Cluster the queue spreads over the nodes. A blocking read cannot wait on streams in
different slots, so every shard is read without blocking, all in one batch on the hot path's
store (on a cluster, a round trip per node, every node at once); the worker polls when the queue
is idle.
Taking over entries a dead process left pending walks each shard's pending list with a cursor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from gateway.relay.outbox import Outbox
from gateway.store import redis_keys
from gateway.store.multiplexed import Store, hash_reply
from gateway.store.pool import store_errors

SHARDS = range(redis_keys.SHARDS)


@dataclass(frozen=True)
class Entry:
    """One queued delivery: where it is (shard and stream entry id) and what it names."""

    shard: int
    entry_id: str
    team_id: str
    delivery_id: str

    @property
    def name(self) -> str:
        """Unique among the entries of every shard."""
        return f"{self.shard}/{self.entry_id}"


def _no_group(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and "NOGROUP" in str(reply)


def _entries(shard: int, raw: Any) -> list[Entry]:
    found = []
    for entry_id, fields in raw or []:
        values = hash_reply(fields) if fields else {}  # a claimed entry deleted meanwhile: None
        if "team_id" in values and "delivery_id" in values:
            found.append(Entry(shard, str(entry_id), values["team_id"], values["delivery_id"]))
    return found


class DeliveryQueue:
    def __init__(self, store: Store, outbox: Outbox, consumer: str, claim_idle: float) -> None:
        self._store = store
        self._outbox = outbox
        self._consumer = consumer
        self._claim_idle_ms = int(claim_idle * 1000)
        self._cursors: dict[int, str] = {}
        """Shards whose pending list is being walked, and where the walk goes on."""

    @property
    def walking(self) -> bool:
        """A walk of the pending lists is under way."""
        return bool(self._cursors)

    def start_walk(self) -> None:
        """Walk every shard's pending list from its start (unless a walk is under way)."""
        if not self._cursors:
            self._cursors = dict.fromkeys(SHARDS, "0-0")

    async def read(self, count: int) -> list[Entry]:
        """New entries, about ``count`` of them spread over the shards (each shard is asked
        for its share, rounded up); the groups are made again if Redis lost them."""
        share = max(1, math.ceil(count / redis_keys.SHARDS))
        async with store_errors():
            replies = await self._store.execute(
                [
                    (
                        "XREADGROUP",
                        "GROUP",
                        redis_keys.DELIVERY_GROUP,
                        self._consumer,
                        "COUNT",
                        share,
                        "STREAMS",
                        redis_keys.delivery_stream(shard),
                        ">",
                    )
                    for shard in SHARDS
                ],
                raise_on_error=False,
            )
        found: list[Entry] = []
        for shard, reply in enumerate(replies):
            if _no_group(reply):
                await self._outbox.ensure_group()
            elif isinstance(reply, Exception):
                raise reply
            else:
                found += [e for _, entries in reply or [] for e in _entries(shard, entries)]
        return found

    async def claim(self, count: int) -> list[Entry]:
        """Entries pending longer than the claim idle time, now this process's: the walk goes
        on in each shard from where its last claim stopped, and ends when it has been round."""
        shards = sorted(self._cursors)
        share = max(1, math.ceil(count / max(1, len(shards))))
        async with store_errors():
            replies = await self._store.execute(
                [
                    (
                        "XAUTOCLAIM",
                        redis_keys.delivery_stream(shard),
                        redis_keys.DELIVERY_GROUP,
                        self._consumer,
                        self._claim_idle_ms,
                        self._cursors[shard],
                        "COUNT",
                        share,
                    )
                    for shard in shards
                ],
                raise_on_error=False,
            )
        found: list[Entry] = []
        for shard, reply in zip(shards, replies, strict=True):
            if _no_group(reply):
                del self._cursors[shard]
                continue
            if isinstance(reply, Exception):
                raise reply
            cursor, claimed, *_ = reply
            if str(cursor) == "0-0":
                del self._cursors[shard]
            else:
                self._cursors[shard] = str(cursor)
            found += _entries(shard, claimed)
        return found

    async def done(self, entry: Entry) -> None:
        """The entry is finished with: acknowledged and deleted."""
        stream = redis_keys.delivery_stream(entry.shard)
        async with store_errors():
            await self._store.execute(
                [
                    ("XACK", stream, redis_keys.DELIVERY_GROUP, entry.entry_id),
                    ("XDEL", stream, entry.entry_id),
                ]
            )

    async def depth(self) -> tuple[int, float]:
        """Deliveries queued or waiting for a retry, over every shard, and the age (s) of the
        oldest queued entry (finished entries are deleted, so a stream's first entry is its
        oldest waiting)."""
        async with store_errors():
            replies = await self._store.execute(
                [
                    command
                    for shard in SHARDS
                    for command in (
                        ("XLEN", redis_keys.delivery_stream(shard)),
                        ("ZCARD", redis_keys.delivery_retries(shard)),
                        ("XRANGE", redis_keys.delivery_stream(shard), "-", "+", "COUNT", 1),
                    )
                ]
            )
        queued = sum(int(n) for n in replies[0::3]) + sum(int(n) for n in replies[1::3])
        firsts = [int(str(first[0][0]).split("-")[0]) for first in replies[2::3] if first]
        age = time.time() - min(firsts) / 1000 if firsts else 0.0
        return queued, max(age, 0.0)
