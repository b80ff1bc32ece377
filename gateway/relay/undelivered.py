"""Deliveries whose queue entry was lost, queued again by the reconciler's look at their team.

``finish.lua`` records a new delivery and lists it in its team's ``redis_keys.undelivered`` with a
deadline; its queue entry is written in a second round trip, in another slot, which a crash (or a
queue node failing) can lose. The worker moves the deadline with every retry and removes the
delivery once delivered or dead. So a delivery still listed past its deadline, still pending
and not waiting for a retry (its ``next_at`` plus the grace has passed too), has no queue entry
that anyone will take: it is queued again, with a new deadline. Should the old entry exist after
all, the worker drops whichever comes second (the record, read again under the delivery's lock,
is finished or its retry not due).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gateway.relay.outbox import PENDING
from gateway.store import redis_keys
from gateway.store.multiplexed import Command
from gateway.store.queueing import queue_delivery
from gateway.store.retention import Retention

logger = logging.getLogger(__name__)

BATCH = 200
"""Overdue deliveries of one team looked at per pass (more wait for the next pass)."""

Pipelined = Callable[[Iterable[Command]], Awaitable[list[Any]]]


async def requeue_overdue(
    pipelined: Pipelined, now: float, teams: list[str], retention: Retention
) -> int:
    """Queue again the ``teams``' deliveries whose deadline has passed (``now``: Redis's clock)
    and that still need an attempt; drop the finished and gone ones from ``undelivered``; how
    many were queued."""
    overdue = await pipelined(
        ("ZRANGEBYSCORE", redis_keys.undelivered(t), "-inf", now, "LIMIT", 0, BATCH) for t in teams
    )
    found = [(t, str(d)) for t, ids in zip(teams, overdue, strict=True) for d in ids]
    replies = await pipelined(
        command
        for t, d in found
        for command in (
            ("HMGET", redis_keys.delivery(t, d), "status", "next_at"),
            ("PTTL", redis_keys.delivery(t, d)),
        )
    )
    grace = retention.delivery_grace
    writes: list[Command] = []
    queued = 0
    for (team_id, delivery_id), (status, next_at), ttl_ms in zip(
        found, replies[0::2], replies[1::2], strict=True
    ):
        listed = redis_keys.undelivered(team_id)
        if status != PENDING or int(ttl_ms) == -2:
            writes.append(("ZREM", listed, delivery_id))
        elif float(next_at or 0) + grace > now:  # a retry is scheduled: its deadline follows
            writes.append(("ZADD", listed, "XX", f"{float(next_at) + grace:.3f}", delivery_id))
        else:
            ttl = int(ttl_ms) if int(ttl_ms) > 0 else retention.delivery_pending * 1000
            writes += queue_delivery(team_id, delivery_id, ttl)
            writes.append(("ZADD", listed, "XX", f"{now + grace:.3f}", delivery_id))
            queued += 1
    await pipelined(writes)
    if queued:
        logger.warning("queued again %d deliveries whose queue entry was lost", queued)
    return queued
