"""Recent jobs, as the console (a team's, or every team's) and the portal (one key's) list them,
from what Redis keeps per team: the open reservations (jobs in flight) and the usage log (one
entry per settled job). Neither is indexed by key, so a key's jobs are found by reading both
newest first, a bounded number of entries, and filtering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gateway.limits.exports import usage_entry
from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors

IN_FLIGHT = "in flight"
SCANNED = 1000
"""Usage log entries and open reservations read per team to find one key's jobs, or one job's
settlement (a team whose other keys made more jobs since shows fewer of this key's)."""


@dataclass(frozen=True)
class JobLine:
    """One job as a list shows it."""

    team_id: str
    key_id: str
    request_id: str
    """Empty while fal has not named the job yet."""
    endpoint: str
    outcome: str
    """How it ended (``charged``, ``failed``, ...), or ``IN_FLIGHT``."""
    cost_micros: int
    """Charged once settled; reserved while in flight."""
    at: float
    """When it was admitted (in flight) or settled (s)."""
    seconds: float | None
    """From admission to settlement, once settled (None: in flight, or not timed)."""


async def recent_jobs(
    redis: Redis, team_ids: Sequence[str], limit: int, key_id: str | None = None
) -> list[JobLine]:
    """Up to ``limit`` of the teams' (or of ``key_id``'s) latest jobs: those in flight first,
    then the settled ones, each newest first."""
    scanned = SCANNED if key_id else limit
    async with store_errors():
        pipe = redis.pipeline(transaction=False)
        for team_id in team_ids:
            pipe.zrevrange(redis_keys.open_reservations(team_id), 0, scanned - 1)
            pipe.xrevrange(redis_keys.usage_log(team_id), count=scanned)
        replies = await pipe.execute()
        open_ids = [
            (t, str(r)) for t, ids in zip(team_ids, replies[0::2], strict=True) for r in ids
        ]
        pipe = redis.pipeline(transaction=False)
        for team_id, reservation_id in open_ids:
            pipe.hgetall(redis_keys.reservation(team_id, reservation_id))
        reservations = await pipe.execute() if open_ids else []
    in_flight = [
        _in_flight(team_id, fields)
        for (team_id, _), raw in zip(open_ids, reservations, strict=True)
        if (fields := fields_of(raw)).get("state") == "open"
    ]
    settled = [
        _settled(usage_entry(team_id, str(entry_id), fields_of(raw)))
        for team_id, entries in zip(team_ids, replies[1::2], strict=True)
        for entry_id, raw in entries or []
    ]
    lines = [
        *sorted(in_flight, key=lambda line: line.at, reverse=True),
        *sorted(settled, key=lambda line: line.at, reverse=True),
    ]
    return [line for line in lines if key_id is None or line.key_id == key_id][:limit]


def _in_flight(team_id: str, fields: dict[str, str]) -> JobLine:
    return JobLine(
        team_id=team_id,
        key_id=fields.get("key_id", ""),
        request_id=fields.get("request_id", ""),
        endpoint=fields.get("endpoint", ""),
        outcome=IN_FLIGHT,
        cost_micros=int(fields.get("cost") or 0),
        at=float(fields.get("created") or 0),
        seconds=None,
    )


def _settled(entry: dict[str, Any]) -> JobLine:
    return JobLine(
        team_id=entry["team_id"],
        key_id=entry["key_id"] or "",
        request_id=entry["request_id"] or "",
        endpoint=entry["endpoint"] or "",
        outcome=entry["outcome"] or "",
        cost_micros=entry["cost_micros"],
        at=int(entry["id"].split("-")[0]) / 1000,
        seconds=entry["seconds"],
    )


async def settlement(redis: Redis, team_id: str, request_id: str) -> dict[str, Any] | None:
    """The usage log entry of a settled job, among the team's newest ``SCANNED``."""
    async with store_errors():
        entries = await redis.xrevrange(redis_keys.usage_log(team_id), count=SCANNED)
    for entry_id, raw in entries or []:
        fields = fields_of(raw)
        if fields.get("request_id") == request_id:
            return usage_entry(team_id, str(entry_id), fields)
    return None


async def reservation(redis: Redis, team_id: str, reservation_id: str) -> dict[str, str]:
    """A reservation's fields (cost, state, outcome, actual charge), or ``{}`` once expired."""
    async with store_errors():
        return fields_of(await redis.hgetall(redis_keys.reservation(team_id, reservation_id)))
