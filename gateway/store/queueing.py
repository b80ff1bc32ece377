"""Commands that put work on the shared structures outside a team's slot: a delivery on its
shard's queue, a team (or alert owner) on its shard's reconcile schedule. Each is in a slot of
its own, so they follow the script that recorded the work, in the same or the next round trip."""

from __future__ import annotations

from gateway.store import redis_keys
from gateway.store.multiplexed import Command


def queue_delivery(team_id: str, delivery_id: str, ttl_ms: int) -> list[Command]:
    """Commands that put a delivery on its shard's stream and (re)write its team lookup, kept
    ``ttl_ms``; each in its own slot, so they may go in any batch."""
    stream = redis_keys.delivery_stream(redis_keys.shard_of(team_id))
    return [
        ("XADD", stream, "*", "team_id", team_id, "delivery_id", delivery_id),
        ("SET", redis_keys.delivery_team(delivery_id), team_id, "PX", max(ttl_ms, 1)),
    ]


def schedule_team(team_id: str, at: float | str) -> Command:
    """The command that puts a team on its shard's reconcile schedule at ``at`` at the latest."""
    due = redis_keys.reconcile_due(redis_keys.shard_of(team_id))
    return ("ZADD", due, "LT", at if isinstance(at, str) else f"{at:.6f}", team_id)
