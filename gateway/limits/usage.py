"""Usage reports from the per-team daily aggregates that ``settle.lua`` keeps.

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
METRICS = ("requests", "images", "pixels", "cost")
MAX_DAYS = 400


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
    """Usage between ``start`` and ``end`` (inclusive), grouped by ``group_by``."""
    span = days(start, end)
    totals: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for team_id in team_ids:
        async with store_errors():
            pipe = redis.pipeline(transaction=False)
            for day in span:
                pipe.hgetall(redis_keys.usage_day_prefix(team_id) + day.isoformat())
            per_day = await pipe.execute()
        for day, raw in zip(span, per_day, strict=True):
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
    rows = []
    for group, metrics in sorted(totals.items()):
        rows.append(
            {
                **dict(zip(group_by, group, strict=True)),
                "requests": metrics["requests"],
                "images": metrics["images"],
                "megapixels": round(metrics["pixels"] / 1_000_000, 6),
                "cost_micros": metrics["cost"],
            }
        )
    return rows
