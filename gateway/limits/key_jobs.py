"""One key's recent jobs, for the portal: those still in flight (the team's open reservations)
and those settled (the team's usage log), newest first. Neither is indexed by key, so both are
read newest first a bounded number of entries at a time and filtered."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors

SCANNED = 1000
"""Most usage log entries and open reservations read to find a key's jobs (a team whose other
keys made more jobs since shows fewer of this key's)."""
IN_FLIGHT = "in flight"


@dataclass(frozen=True)
class JobLine:
    """One job as a list shows it."""

    request_id: str
    """Empty while fal has not named the job yet."""
    endpoint: str
    outcome: str
    """How it ended (``charged``, ``failed``, ...), or ``IN_FLIGHT``."""
    cost_micros: int
    """Charged once settled; reserved while in flight."""
    at: float
    """When it was admitted (in flight) or settled (s)."""


async def recent_jobs(redis: Redis, team_id: str, key_id: str, limit: int) -> list[JobLine]:
    """Up to ``limit`` of the key's latest jobs: those in flight first, then the settled ones."""
    async with store_errors():
        open_ids = await redis.zrevrange(redis_keys.open_reservations(team_id), 0, SCANNED - 1)
        pipe = redis.pipeline(transaction=False)
        for reservation_id in open_ids:
            pipe.hgetall(redis_keys.reservation(team_id, str(reservation_id)))
        reservations = [fields_of(raw) for raw in await pipe.execute()] if open_ids else []
        log = await redis.xrevrange(redis_keys.usage_log(team_id), count=SCANNED) or []
    lines = [
        JobLine(
            request_id=fields.get("request_id", ""),
            endpoint=fields.get("endpoint", ""),
            outcome=IN_FLIGHT,
            cost_micros=int(fields.get("cost") or 0),
            at=float(fields.get("created") or 0),
        )
        for fields in reservations
        if fields.get("key_id") == key_id and fields.get("state") == "open"
    ]
    for entry_id, raw in log:
        fields = fields_of(raw)
        if fields.get("key_id") == key_id:
            lines.append(
                JobLine(
                    request_id=fields.get("request_id", ""),
                    endpoint=fields.get("endpoint", ""),
                    outcome=fields.get("outcome", ""),
                    cost_micros=int(fields.get("cost_micros") or 0),
                    at=int(str(entry_id).split("-")[0]) / 1000,
                )
            )
    return lines[:limit]


async def reservation(redis: Redis, team_id: str, reservation_id: str) -> dict[str, str]:
    """A reservation's fields (cost, state, outcome, actual charge), or ``{}`` once expired."""
    async with store_errors():
        return fields_of(await redis.hgetall(redis_keys.reservation(team_id, reservation_id)))
