"""Webhook deliveries as fal makes them: signed POSTs, retried on a schedule until one lands.

fal documents "10 retries in the span of 2 hours" without the spacing; the emulator doubles the
wait from 7 s (7 s, 14 s, ... 3584 s: 7161 s in all), scaled by ``webhook_retry_scale``. A
delivery succeeds on any 2xx answer. Each attempt is signed afresh with its own timestamp, since
receivers refuse timestamps more than five minutes old.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from gateway.emulator.jobs import Job, Outcome
from gateway.emulator.signing import WebhookSigner
from gateway.settings import EmulatorKnobs

RETRY_DELAYS: tuple[float, ...] = tuple(7.0 * 2**i for i in range(10))
"""Seconds before each retry after the first attempt, unscaled."""

ATTEMPT_LOG_SIZE = 1000
PENDING = "pending"
"""The outcome of an attempt still under way."""


def webhook_payload(job: Job, outcome: Outcome) -> dict[str, Any]:
    """fal's webhook body for a finished job."""
    payload: dict[str, Any] = {
        "request_id": job.id,
        "gateway_request_id": job.id,
        "status": "OK" if outcome.ok else "ERROR",
        "payload": outcome.body,
    }
    if not outcome.ok:
        payload["error"] = f"Invalid status code: {outcome.status_code}"
    return payload


class WebhookSender:
    """Delivers each finished job's webhook in the background, with fal's retries."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        signer: WebhookSigner,
        knobs: Callable[[], EmulatorKnobs],
    ) -> None:
        self._client = client
        self._signer = signer
        self._knobs = knobs
        self.attempts: deque[dict[str, Any]] = deque(maxlen=ATTEMPT_LOG_SIZE)
        """Recent delivery attempts, newest last, for ``/_emulator/webhooks``."""

    async def deliver(self, job: Job, url: str, outcome: Outcome) -> bool:
        """Deliver until a 2xx or the schedule runs out; True when delivered."""
        body = json.dumps(webhook_payload(job, outcome), separators=(",", ":")).encode()
        await asyncio.sleep(self._knobs().webhook_delay)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS), start=1):
            if delay:
                await asyncio.sleep(delay * self._knobs().webhook_retry_scale)
            if await self._attempt(job.id, url, body, attempt):
                return True
        return False

    async def _attempt(self, request_id: str, url: str, body: bytes, attempt: int) -> bool:
        knobs = self._knobs()
        record: dict[str, Any] = {
            "request_id": request_id,
            "attempt": attempt,
            "url": url,
            "outcome": PENDING,
        }
        self.attempts.append(record)
        if attempt <= knobs.webhook_drop_attempts:
            record["outcome"] = "dropped"
            return False
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fal-emulator-webhook",
            **self._signer.headers(request_id, body, int(time.time())),
        }
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=knobs.webhook_timeout
            )
        except httpx.HTTPError as exc:
            record["outcome"] = f"error: {type(exc).__name__}"
            return False
        record["status_code"] = response.status_code
        delivered = response.is_success
        record["outcome"] = "delivered" if delivered else "refused"
        return delivered
