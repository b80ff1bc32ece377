"""What the gateway keeps in Redis, by key family: count, bytes and keys without a TTL.

A family is a key name with its team and ids replaced (``fgw:{*}:req:*``), so the growth
benchmark and the retention tests can say which kinds of record would live forever.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import redis

_TEAM = re.compile(r"\{[^}]*\}")
_PER_ID = (
    "key",
    "req",
    "resv",
    "leases",
    "rate:key",
    "delivery",
    "deliveries",
    "delivery-lock",
    "delivery-team",
    "usage:day",
    "failures",
)
"""Families whose last part is an id (or a day)."""

PER_JOB = ("req", "resv", "delivery", "delivery-lock", "delivery-team")
"""Families with one key per job: none of them may live forever."""


def family(name: str) -> str:
    """``name`` with its team and id replaced by ``*``."""
    masked = _TEAM.sub("{*}", name)
    prefix, _, rest = masked.partition("{*}:")
    if not rest:
        return re.sub(r"(fgw:delivery-team:).*", r"\1*", masked)
    for kind in sorted(_PER_ID, key=len, reverse=True):
        if rest.startswith(kind + ":"):
            return f"{prefix}{{*}}:{kind}:*"
    return masked


@dataclass
class Family:
    keys: int = 0
    bytes: int = 0
    without_ttl: int = 0
    types: set[str] = field(default_factory=set)
    encodings: set[str] = field(default_factory=set)


def census(client: redis.Redis, *names_like: str) -> dict[str, Family]:
    """Every key (or those matching the ``SCAN`` patterns ``names_like``), by family: how many,
    ``MEMORY USAGE`` summed, how many have no TTL."""
    found: dict[str, Family] = defaultdict(Family)
    names = [str(n) for like in names_like or ("*",) for n in client.scan_iter(like, count=1000)]
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.memory_usage(name, samples=0)
            pipe.ttl(name)
            pipe.type(name)
            pipe.object("encoding", name)
        replies = pipe.execute()
        for n, name in enumerate(chunk):
            size, ttl, kind, encoding = replies[4 * n : 4 * n + 4]
            if kind == "none":
                continue  # expired between the scan and now
            entry = found[family(name)]
            entry.keys += 1
            entry.bytes += int(size or 0)
            entry.without_ttl += ttl == -1
            entry.types.add(str(kind))
            entry.encodings.add(str(encoding))
    return dict(found)
