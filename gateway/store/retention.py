"""How long the records the scripts and the outbox write are kept, from the settings: the TTLs
and trims that ``redis_keys`` writes beside each key."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.settings import Settings

SPEND_DAYS = 62
"""Days of per-period spend kept in a team's spend hash (caps only read today and this month);
the hash also expires this long after its last write."""
SPEND_FIELDS = 70
"""``admit.lua`` drops the spend hash's periods older than ``SPEND_DAYS`` once it has more fields
than this (about two months of days plus their months)."""
JITTER = 1.2
"""The largest factor the delivery worker's jitter stretches a retry delay by (±20 %)."""


@dataclass(frozen=True)
class Retention:
    """Seconds each kind of record is kept (whole seconds, as ``EXPIRE`` takes them)."""

    delivery: int
    """A delivery once delivered or dead-lettered (the worker sets it then)."""
    delivery_pending: int
    """A delivery from its creation (or replay): its whole retry schedule, then ``delivery``;
    so even a delivery nobody finishes cannot live forever. Also the per-key delivery lists'
    lifetime after their newest entry."""
    usage: int
    """Daily usage aggregates after their last write, and per-request usage log entries."""
    ledger: int
    """Ledger entries."""
    delivery_grace: int = 60
    """How long a queued delivery may go unattempted past its due time before the reconciler
    queues it again (its queue entry was lost): twice what an orphaned entry's claim and its
    attempt take. Not a retention, but every writer of ``undelivered`` needs it."""
    spend: int = SPEND_DAYS * 86400

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        schedule = settings.webhook_retry_schedule
        per_attempt = settings.webhook_timeout + settings.webhook_claim_idle
        retrying = sum(schedule) * JITTER + (len(schedule) + 1) * per_attempt
        return cls(
            delivery=math.ceil(settings.delivery_retention),
            delivery_pending=math.ceil(retrying + settings.delivery_retention),
            usage=math.ceil(settings.usage_retention),
            ledger=math.ceil(settings.ledger_retention),
            delivery_grace=math.ceil(2 * per_attempt),
        )
