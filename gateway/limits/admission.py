"""Admission of a submit: one call of ``admit.lua``, and its refusals as fal-shaped errors."""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass

from gateway.accounts.tokens import Token
from gateway.errors import INVALID_KEY, FalError, PaymentRequired, RateLimited, Unauthorized
from gateway.policy.cache import Rules, StalePolicy
from gateway.settings import Settings
from gateway.store import script_calls as store
from gateway.store.script_calls import Refused
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    reservation_id: str
    cost_micros: int
    """What the team is charged (the list price times its multiplier), reserved until settled."""
    headers: dict[str, str]
    """``RateLimit-*`` headers for the caller, when its key has a rate limit."""


def _rate_headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    if limit <= 0:
        return {}
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(remaining, 0)),
        "RateLimit-Reset": str(math.ceil(reset_ms / 1000)),
    }


def _refusal(reason: str, retry_after_ms: int, detail: int) -> FalError:
    if reason == "invalid_key":
        return Unauthorized(INVALID_KEY)
    if reason in ("rate_key", "rate_team"):
        seconds = max(1, math.ceil(retry_after_ms / 1000))
        scope = "this key" if reason == "rate_key" else "this key's team"
        return RateLimited(
            f"Rate limit of {detail} requests per minute reached for {scope}",
            headers={
                "Retry-After": str(seconds),
                **_rate_headers(detail, 0, retry_after_ms),
            },
        )
    if reason == "concurrency":
        return RateLimited(
            f"{detail} jobs are already in flight for this key; retry when one completes",
            error_type="concurrency_limit",
        )
    messages = {
        "insufficient_credit": "Not enough credit for this request",
        "key_spend_cap": "This key has reached its spending cap",
        "daily_cap": "The team's daily spending cap is reached",
        "monthly_cap": "The team's monthly spending cap is reached",
        "no_team": "This key's team has no credit account",
    }
    return PaymentRequired(messages.get(reason, "Request refused"), error_type=reason)


class Admitter:
    def __init__(self, scripts: Scripts, settings: Settings, metrics: Metrics) -> None:
        self._scripts = scripts
        self._settings = settings
        self._metrics = metrics

    async def admit(
        self,
        token: Token,
        rules: Rules,
        endpoint_id: str,
        estimate_micros: int,
        unbound_for: float = 0.0,
    ) -> Admission:
        """Reserve credit and a lease for a request priced at ``estimate_micros``, or raise why
        not (one round trip). ``unbound_for``: how long the job may run before fal names it."""
        reservation_id = uuid.uuid4().hex
        result = await self._scripts.admit(
            store.Admission(
                team_id=token.team_id,
                key_id=token.key_id,
                secret_hash=token.secret_hash,
                estimate_micros=estimate_micros,
                reservation_id=reservation_id,
                endpoint_id=endpoint_id,
                key_policy_version=rules.key_version,
                team_policy_version=rules.team_version,
                lease_ttl=int(self._settings.lease_ttl),
                reservation_ttl=int(self._settings.request_retention),
                unbound_for=int(unbound_for),
            )
        )
        if isinstance(result, Refused):
            if result.reason == "stale_policy":
                raise StalePolicy
            self._metrics.admissions.labels(result.reason).inc()
            raise _refusal(result.reason, result.retry_after_ms, result.detail)
        self._metrics.admissions.labels("admitted").inc()
        for cap, spent, cap_micros in result.caps:
            self._warn_near_cap(token.team_id, cap, spent - result.cost_micros, spent, cap_micros)
        return Admission(
            reservation_id=reservation_id,
            cost_micros=result.cost_micros,
            headers=_rate_headers(result.rate_limit, result.rate_remaining, result.rate_reset_ms),
        )

    def _warn_near_cap(self, team_id: str, cap: str, before: int, after: int, limit: int) -> None:
        """Count and log the admission that took a team's spend past the warning share of a
        cap: one per team and period, as admissions are serialized by ``admit.lua``."""
        threshold = self._settings.cap_warning_ratio * limit
        if not before < threshold <= after:
            return
        team = team_id if self._settings.metrics_team_label else ""
        self._metrics.cap_warnings.labels(cap, team).inc()
        logger.warning(
            "team %s has spent %d of its %s cap of %d micros (%.0f%%)",
            team_id,
            after,
            cap,
            limit,
            100 * after / limit,
        )
