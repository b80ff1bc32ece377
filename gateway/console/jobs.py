"""Recent jobs as the console lists them, from what Redis keeps per team: the usage log (one
entry per settled request) and the open reservations (jobs in flight, not settled yet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from gateway.accounts.keys import rfc3339
from gateway.limits.exports import usage_entry
from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors

RECENT = 50
"""Jobs listed per team, newest first."""
SEARCHED = 1000
"""Usage log entries looked through for one job's settlement."""


async def recent_jobs(redis: Redis, team_ids: Sequence[str], limit: int = RECENT) -> list[Any]:
    """The newest ``limit`` jobs of the teams (in flight first, then settled, newest first)."""
    async with store_errors():
        pipe = redis.pipeline(transaction=False)
        for team_id in team_ids:
            pipe.xrevrange(redis_keys.usage_log(team_id), count=limit)
            pipe.zrevrange(redis_keys.open_reservations(team_id), 0, limit - 1)
        replies = await pipe.execute()
        settled_replies, open_replies = replies[0::2], replies[1::2]
        pipe = redis.pipeline(transaction=False)
        opened = [(t, str(r)) for t, ids in zip(team_ids, open_replies, strict=True) for r in ids]
        for team_id, reservation_id in opened:
            pipe.hgetall(redis_keys.reservation(team_id, reservation_id))
        reservations = await pipe.execute() if opened else []
    jobs = [
        _in_flight(team_id, fields_of(fields))
        for (team_id, _), fields in zip(opened, reservations, strict=True)
        if fields
    ]
    settled = [
        usage_entry(team_id, str(entry_id), fields_of(fields))
        for team_id, entries in zip(team_ids, settled_replies, strict=True)
        for entry_id, fields in entries or []
    ]
    jobs.sort(key=lambda job: job["at"] or "", reverse=True)
    settled.sort(key=lambda job: job["at"] or "", reverse=True)
    return (jobs + settled)[:limit]


def _in_flight(team_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "at": rfc3339(float(fields.get("created") or 0)),
        "team_id": team_id,
        "request_id": fields.get("request_id") or None,
        "key_id": fields.get("key_id"),
        "endpoint": fields.get("endpoint"),
        "outcome": "in flight",
        "cost_micros": int(fields.get("cost") or 0),
        "images": 0,
    }


async def settlement(redis: Redis, team_id: str, request_id: str) -> dict[str, Any] | None:
    """The usage log entry of a settled request, among the team's newest ``SEARCHED``."""
    async with store_errors():
        entries = await redis.xrevrange(redis_keys.usage_log(team_id), count=SEARCHED)
    for entry_id, raw in entries or []:
        fields = fields_of(raw)
        if fields.get("request_id") == request_id:
            return usage_entry(team_id, str(entry_id), fields)
    return None
