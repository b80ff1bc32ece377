"""The global indexes of teams and keys (``TEAM_INDEX``, ``KEY_INDEX``), derived from records.

An index lives in a hash slot of its own and each record in its team's, so on Redis Cluster no
transaction or script writes both. The record is the truth; an index is a superset of the
records, which the records can rebuild:

- Creation writes the index entry first, with a mark of when (``*_INDEX_PENDING``, in the
  index's slot, in the same ``MULTI``), then the record, then clears the mark. A crash leaves at
  most an entry without a record, never a record the index misses.
- Readers (lookups by id, listings, the reconciler's audit, which finds no open reservations for
  such a team) treat an entry without a record as absent.
- ``repair`` drops the entries without a record whose mark is older than a grace (or that have
  none), and re-adds the entry of every record the index misses (left by older versions, which
  wrote the record first, or by a failover that lost one of the two writes). Records are found
  by ``SCAN``: redis-py's ``scan_iter`` on a ``RedisCluster`` scans every primary in turn.

Why a drop never takes the entry of a creation in progress: it runs under ``WATCH`` of the marks
and reads records and marks after it. A creation that cleared its mark before the ``WATCH`` wrote
its record before the read, which sees it; one that touches the marks after the ``WATCH`` makes
the ``EXEC`` fail, and the drop starts over; in between, its mark is read and younger than the
grace. Only a creation stalled for longer than the grace loses its entry, and the next
``repair`` finds its record. A ``SCAN`` misses keys created or moved (resharding) while it runs:
run ``repair`` again after a reshard.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from gateway.accounts.tokens import TEAM_ID_PATTERN
from gateway.errors import StoreUnavailable
from gateway.store import redis_keys
from gateway.store.pool import store_errors

REPAIR_GRACE = 600
"""Seconds an entry without a record may belong to a creation in progress (default)."""
DROP_ATTEMPTS = 10
"""Times a drop starts over because marks changed under it before it gives up."""
BATCH = 500
"""Records checked per pipelined round trip."""


class RecordIndex(ABC):
    """One global index of records kept in their teams' slots."""

    name: str
    key: str
    pending: str
    scan_match: str
    """``SCAN MATCH`` pattern of the records (``parse`` tells them from look-alikes)."""

    @abstractmethod
    async def entries(self, redis: Redis) -> dict[str, str]:
        """Every entry: id → its team."""

    @abstractmethod
    def add(self, pipe: Pipeline, item_id: str, team_id: str) -> None: ...

    @abstractmethod
    def remove(self, pipe: Pipeline, item_id: str) -> None: ...

    @abstractmethod
    def has(self, pipe: Pipeline, item_id: str) -> None:
        """Queue a command whose reply is true when the index holds ``item_id``."""

    @abstractmethod
    def probe(self, pipe: Pipeline, item_id: str, team_id: str) -> None:
        """Queue a command whose reply is true when the record exists."""

    @abstractmethod
    def parse(self, name: str) -> tuple[str, str] | None:
        """(id, team) of a record's key name; None for another key."""


class KeyIndex(RecordIndex):
    name, key, pending = "keys", redis_keys.KEY_INDEX, redis_keys.KEY_INDEX_PENDING
    scan_match = redis_keys.key_record("*", "*")
    _record = re.compile(
        re.escape(redis_keys.key_record("@team", "@key"))
        .replace("@team", f"({TEAM_ID_PATTERN})")
        .replace("@key", "([a-z0-9]+)")
    )

    async def entries(self, redis: Redis) -> dict[str, str]:
        return {str(k): str(t) for k, t in (await redis.hgetall(self.key)).items()}

    def add(self, pipe: Pipeline, item_id: str, team_id: str) -> None:
        pipe.hset(self.key, item_id, team_id)

    def remove(self, pipe: Pipeline, item_id: str) -> None:
        pipe.hdel(self.key, item_id)

    def has(self, pipe: Pipeline, item_id: str) -> None:
        pipe.hexists(self.key, item_id)

    def probe(self, pipe: Pipeline, item_id: str, team_id: str) -> None:
        pipe.exists(redis_keys.key_record(team_id, item_id))

    def parse(self, name: str) -> tuple[str, str] | None:
        found = self._record.fullmatch(name)
        return None if found is None else (found[2], found[1])


class TeamIndex(RecordIndex):
    name, key, pending = "teams", redis_keys.TEAM_INDEX, redis_keys.TEAM_INDEX_PENDING
    scan_match = redis_keys.team_record("*")
    _record = re.compile(
        re.escape(redis_keys.team_record("@team")).replace("@team", f"({TEAM_ID_PATTERN})")
    )
    EXISTS_FIELD = "multiplier_ppm"
    """Every team record has it (``TeamStore.create`` writes the record whole)."""

    async def entries(self, redis: Redis) -> dict[str, str]:
        return {str(t): str(t) for t in await redis.smembers(self.key)}

    def add(self, pipe: Pipeline, item_id: str, team_id: str) -> None:
        pipe.sadd(self.key, item_id)

    def remove(self, pipe: Pipeline, item_id: str) -> None:
        pipe.srem(self.key, item_id)

    def has(self, pipe: Pipeline, item_id: str) -> None:
        pipe.sismember(self.key, item_id)

    def probe(self, pipe: Pipeline, item_id: str, team_id: str) -> None:
        pipe.hexists(redis_keys.team_record(team_id), self.EXISTS_FIELD)

    def parse(self, name: str) -> tuple[str, str] | None:
        found = self._record.fullmatch(name)
        return None if found is None else (found[1], found[1])


KEYS = KeyIndex()
TEAMS = TeamIndex()
INDEXES: tuple[RecordIndex, ...] = (KEYS, TEAMS)


async def begin(redis: Redis, index: RecordIndex, item_id: str, team_id: str) -> None:
    """Before a record is written: its index entry, and the mark of a creation in progress."""
    pipe = redis.pipeline(transaction=True)
    index.add(pipe, item_id, team_id)
    pipe.zadd(index.pending, {item_id: time.time()})
    await pipe.execute()


async def end(redis: Redis, index: RecordIndex, item_id: str) -> None:
    """After the record is written: the creation is no longer in progress."""
    await redis.zrem(index.pending, item_id)


async def existing(redis: Redis, index: RecordIndex, items: Sequence[tuple[str, str]]) -> set[str]:
    """The ids among ``items`` (id, team) whose record exists, read pipelined (grouped by node
    on a cluster)."""
    found: set[str] = set()
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        pipe = redis.pipeline(transaction=False)
        for item_id, team_id in chunk:
            index.probe(pipe, item_id, team_id)
        replies = await pipe.execute()
        found.update(item_id for (item_id, _), there in zip(chunk, replies, strict=True) if there)
    return found


@dataclass(frozen=True)
class Repaired:
    dropped: list[str]
    """Entries without a record (and older than the grace), removed."""
    restored: list[str]
    """Records the index missed, added."""

    def public(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "restored": self.restored}


async def repair(redis: Redis, index: RecordIndex, grace: float = REPAIR_GRACE) -> Repaired:
    """Make ``index`` hold exactly the existing records (but creations younger than ``grace``)."""
    async with store_errors():
        dropped = await _drop_dangling(redis, index, grace)
        restored = await _restore_missing(redis, index)
    return Repaired(sorted(dropped), sorted(restored))


async def _drop_dangling(redis: Redis, index: RecordIndex, grace: float) -> list[str]:
    for _ in range(DROP_ATTEMPTS):
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(index.pending)
            entries = await index.entries(redis)
            present = await existing(redis, index, list(entries.items()))
            scored: list[Any] = await redis.zrange(index.pending, 0, -1, withscores=True)
            marks = {str(m): float(t) for m, t in scored}
            cutoff = time.time() - grace
            dangling = [i for i in entries if i not in present and marks.get(i, 0) <= cutoff]
            unmarked = {*dangling, *(m for m, t in marks.items() if m in present or t <= cutoff)}
            if not unmarked:
                return []
            pipe.multi()  # type: ignore[no-untyped-call]
            for item_id in dangling:
                index.remove(pipe, item_id)
            pipe.zrem(index.pending, *unmarked)
            try:
                await pipe.execute()
            except WatchError:
                continue
            return dangling
    raise StoreUnavailable(f"{index.name} were being created throughout the repair; try again")


async def _restore_missing(redis: Redis, index: RecordIndex) -> list[str]:
    # The scan comes before reading the index: a record seen by it had its entry written
    # before it, so a creation in progress is never counted as restored.
    records: dict[str, str] = {}
    async for name in redis.scan_iter(match=index.scan_match, count=1000):
        parsed = index.parse(str(name))
        if parsed is not None:
            records[parsed[0]] = parsed[1]
    restored: list[str] = []
    items = list(records.items())
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        pipe = redis.pipeline(transaction=False)
        for item_id, team_id in chunk:
            index.has(pipe, item_id)
            index.probe(pipe, item_id, team_id)
        replies = await pipe.execute()
        missing = [
            item for n, item in enumerate(chunk) if not replies[2 * n] and replies[2 * n + 1]
        ]
        if missing:
            pipe = redis.pipeline(transaction=False)
            for item_id, team_id in missing:
                index.add(pipe, item_id, team_id)
            await pipe.execute()
            restored += [item_id for item_id, _ in missing]
    return restored


async def repair_all(redis: Redis, grace: float = REPAIR_GRACE) -> dict[str, Repaired]:
    """``repair`` of every index, by name."""
    return {index.name: await repair(redis, index, grace) for index in INDEXES}
