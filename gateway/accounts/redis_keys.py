"""Every Redis key the gateway writes, with its lifetime. Nothing else formats key names.

Keys that one operation touches together share the hash tag ``{<team_id>}``, so the same commands
and scripts run on Redis Cluster.
"""

from __future__ import annotations

PREFIX = "fgw"

KEY_INDEX = f"{PREFIX}:keys"
"""HASH key_id → team_id of every key ever created; admin lookups only, never the hot path.
Lives forever."""


def key_record(team_id: str, key_id: str) -> str:
    """HASH of one API key (name, team, secret hash, status, times). Lives until deleted."""
    return f"{PREFIX}:{{{team_id}}}:key:{key_id}"


def team_record(team_id: str) -> str:
    """HASH of one team (its ``policy``, as JSON). Lives until deleted."""
    return f"{PREFIX}:{{{team_id}}}:team"


def request_record(team_id: str, request_id: str) -> str:
    """HASH of one forwarded request (owning key, app, endpoint, time).
    Expires ``request_retention`` seconds after submit."""
    return f"{PREFIX}:{{{team_id}}}:req:{request_id}"
