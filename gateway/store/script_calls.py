"""What the scripts of ``store.scripts`` are given and answer, as values: an admission and its
reply, a job's ending and what recording it did."""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK_ON_RESERVATION = "*"
"""``Ending.webhook_url`` for "the URL the reservation holds" (request records do not repeat
it, so a finish from a request record knows only that there is one)."""


@dataclass(frozen=True)
class Admitted:
    """``admit.lua`` reserved the credit and took a lease."""

    cost_micros: int
    rate_limit: int
    rate_remaining: int
    rate_reset_ms: int
    caps: tuple[tuple[str, int, int], ...] = ()
    """(``daily`` or ``monthly``, the team's spend in it with this cost, its cap) for each cap."""


@dataclass(frozen=True)
class Refused:
    """``admit.lua`` refused, and why."""

    reason: str
    retry_after_ms: int
    detail: int


@dataclass(frozen=True)
class Admission:
    """What to reserve for one submit."""

    team_id: str
    key_id: str
    secret_hash: str
    estimate_micros: int
    reservation_id: str
    endpoint_id: str
    key_policy_version: int
    team_policy_version: int
    lease_ttl: int
    reservation_ttl: int
    unbound_for: int = 0
    """Seconds the job may run without a fal request id (a sync run) before it counts as
    abandoned."""


@dataclass(frozen=True)
class Ending:
    """How one job ended, as ``finish.lua`` records it."""

    team_id: str
    key_id: str
    reservation_id: str
    request_id: str
    outcome: str
    list_cost: int = 0
    """The actual list price (micros); -1 charges the admission estimate."""
    images: int = 0
    pixels: int = 0
    final_status: str = ""
    """fal's final status (JSON) to answer later polls with; empty: none."""
    webhook_url: str = ""
    """Where to queue the caller's webhook (``WEBHOOK_ON_RESERVATION``: the reservation's);
    empty: nowhere."""
    webhook_body: str = ""
    failed: bool = False
    """Counted as a failed job in the day's usage."""
    usage_fields: tuple[str, ...] = ()
    """More field/value pairs for the job's usage log entry (fal's billable units, ...)."""


@dataclass(frozen=True)
class Finished:
    settlement: str
    """``settled`` (by this call), ``already`` or ``missing``."""
    charged: int
    delivery: str
    """``new``, ``duplicate`` or ``none``."""
    overrun: int = 0
    """What the actual cost exceeded the reservation by (not charged)."""
