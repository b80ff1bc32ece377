"""Alerts the scripts raise, and the deliveries that carry them to the operator's alert webhook
(``GATEWAY_ALERT_WEBHOOK_URL``) and to a team's own.

A team's thresholds are checked where its balance changes, in ``finish.lua`` and ``credit.lua``
(``lua/team_alerts.lua``); a fal account's health where it changes, in ``account_health.lua``
and ``count_failures.lua``. The script that sees a crossing records the alert's deliveries too,
as ``finish.lua`` records a caller's webhook (``lua/alert_delivery.lua``), so one crossing makes
one alert, and a crash before the deliveries are queued cannot lose them: the reconciler queues
them from their owner's ``undelivered`` set. A team's alerts are in its slot; the pool's in the
``{upstreams}`` slot, under ``redis_keys.UPSTREAM_ALERTS`` in place of a team id. The delivery
worker sends them as it sends callers' webhooks, signed with the secret ``signer`` names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import token_hex
from typing import Any

from gateway.errors import FalError
from gateway.store import redis_keys
from gateway.store.multiplexed import Command, Store
from gateway.store.pool import store_errors
from gateway.store.queueing import queue_delivery, schedule_team
from gateway.store.retention import Retention
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

OPERATOR = "operator"
TEAM = "team"
"""A delivery record's ``signer``: the operator's alert secret, or its team's; a caller's
webhook has none (its key's secret)."""
KINDS = ("team.low_balance", "team.near_cap", "upstream.disabled", "upstream.failing")


class Alerts:
    """What the scripts need to record alert deliveries, and the queueing that follows."""

    def __init__(
        self, store: Store, metrics: Metrics, retention: Retention, operator_url: str = ""
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._retention = retention
        self._operator_url = operator_url

    def prepare(self, owner: str, slots: int) -> tuple[list[str], list[Any]]:
        """The ``KEYS`` for up to ``slots`` new deliveries of ``owner`` and the six ``ARGV``
        that ``alert_delivery.lua`` reads."""
        prefix = f"alert-{token_hex(8)}"
        keys = [redis_keys.delivery(owner, f"{prefix}-{n}") for n in range(1, slots + 1)]
        moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        retention = self._retention
        args = [owner, prefix, self._operator_url, moment, retention.delivery_pending]
        return keys, [*args, retention.delivery_grace]

    async def queue(
        self, owner: str, reply: Sequence[Any], commands: Sequence[Command] = ()
    ) -> None:
        """Count the alerts a script raised (``reply``: its last two elements) and queue their
        deliveries, with ``commands`` (another delivery's queueing); a failure leaves them to
        the reconciler."""
        kinds, ids = reply
        for kind in kinds:
            self._metrics.alerts.labels(str(kind)).inc()
        batch = list(commands)
        ttl_ms = self._retention.delivery_pending * 1000
        for delivery_id in ids:
            batch += queue_delivery(owner, str(delivery_id), ttl_ms)
        if ids:
            batch.append(schedule_team(owner, time.time()))
        if not batch:
            return
        try:
            async with store_errors():
                await self._store.execute(batch)
        except FalError as exc:  # recorded as undelivered: the reconciler queues them
            logger.warning("deliveries of %s left for the reconciler to queue: %s", owner, exc)
