"""Usage reports from the per-team daily aggregates that ``finish.lua`` keeps (jobs settled,
those of them that failed, images, pixels and cost).

Each aggregate field is ``<key id>|<endpoint>|<metric>``; rows are summed over whatever the caller
does not group by. Megapixels are reported from exact pixel counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from redis.asyncio import Redis

from gateway.store import redis_keys
from gateway.store.pool import fields_of, store_errors

GROUPS = ("day", "team_id", "key_id", "endpoint")
METRICS = ("requests", "failed", "images", "pixels", "cost")
"""The metrics each day's hash counts per key and endpoint."""
COLUMNS = ("requests", "failed", "images", "megapixels", "cost_micros")
"""The metrics of a usage row, as reports show them."""
MAX_DAYS = 400
COMMANDS_PER_TRIP = 500
KEYS_PER_TRIP = 20_000
"""A round trip ends at either bound (each trip keeps Redis busy for a few ms at most)."""


def days(start: date, end: date) -> list[date]:
    if end < start:
        return []
    return [start + timedelta(days=n) for n in range(min((end - start).days + 1, MAX_DAYS))]


async def usage_rows(
    redis: Redis,
    team_ids: Iterable[str],
    start: date,
    end: date,
    *,
    key_id: str | None = None,
    endpoint: str | None = None,
    group_by: Sequence[str] = GROUPS,
) -> list[dict[str, Any]]:
    """Usage between ``start`` and ``end`` (inclusive), grouped by ``group_by``.

    Commands for many teams share each round trip; over several days, teams with no usage at
    all in the span are skipped after one ``EXISTS`` each (the day keys of a team share its hash
    tag, so this holds on Redis Cluster too)."""
    span = days(start, end)
    teams = list(team_ids)
    if len(span) > 1:
        counts = await _pipelined(redis, [("EXISTS", *_day_keys(t, span)) for t in teams])
        teams = [team for team, count in zip(teams, counts, strict=True) if count]
    wanted = [(team, day) for team in teams for day in span]
    per_day = await _pipelined(
        redis, [("HGETALL", redis_keys.usage_day_prefix(t) + d.isoformat()) for t, d in wanted]
    )
    totals: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for (team_id, day), raw in zip(wanted, per_day, strict=True):
        for field, value in fields_of(raw).items():
            row_key, row_endpoint, metric = field.rsplit("|", 2)
            if (key_id and row_key != key_id) or (endpoint and row_endpoint != endpoint):
                continue
            labels = {
                "day": day.isoformat(),
                "team_id": team_id,
                "key_id": row_key,
                "endpoint": row_endpoint,
            }
            group = tuple(labels[g] for g in group_by)
            totals[group][metric] += int(value)
    return [
        _row(dict(zip(group_by, group, strict=True)), metrics)
        for group, metrics in sorted(totals.items())
    ]


def empty_row() -> dict[str, Any]:
    """A usage row of no usage at all."""
    return _row({}, dict.fromkeys(METRICS, 0))


def _row(labels: dict[str, str], metrics: dict[str, int]) -> dict[str, Any]:
    return {
        **labels,
        "requests": metrics["requests"],
        "failed": metrics["failed"],
        "images": metrics["images"],
        "megapixels": round(metrics["pixels"] / 1_000_000, 6),
        "cost_micros": metrics["cost"],
    }


def _day_keys(team_id: str, span: Sequence[date]) -> list[str]:
    return [redis_keys.usage_day_prefix(team_id) + day.isoformat() for day in span]


async def _pipelined(redis: Redis, commands: Sequence[tuple[str, ...]]) -> list[Any]:
    """Replies to ``commands``, pipelined a bounded number to a round trip."""
    replies: list[Any] = []
    chunk: list[tuple[str, ...]] = []
    keys = 0
    for n, command in enumerate(commands, 1):
        chunk.append(command)
        keys += len(command) - 1
        if len(chunk) >= COMMANDS_PER_TRIP or keys >= KEYS_PER_TRIP or n == len(commands):
            async with store_errors():
                pipe = redis.pipeline(transaction=False)
                for args in chunk:
                    pipe.execute_command(*args)
                replies += await pipe.execute()
            chunk, keys = [], 0
    return replies
