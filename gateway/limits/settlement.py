"""Settlement: a reservation becomes the actual cost of what fal produced, exactly once.

The actual list price is computed from the output's ``images[]`` (width x height each, priced as
at admission); an image without dimensions is charged at the admission estimate. Jobs that fail,
submits fal refuses, cancelled jobs and jobs fal no longer knows are refunded in full.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from gateway.catalog import Size, find_endpoint
from gateway.catalog.outputs import EditOutput
from gateway.catalog.pricing import image_cost_micros
from gateway.store import redis_keys
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics

logger = logging.getLogger(__name__)

CHARGED = "charged"
FAILED = "failed"
REFUSED = "refused"
LOST = "lost"
ABANDONED = "abandoned"
USE_ESTIMATE = -1
"""Passed as the actual cost when it cannot be read from the output: charge the estimate."""


def actual_list_cost(endpoint_id: str, output: Any) -> tuple[int, int, int]:
    """The list price, image count and pixel count of an output (``USE_ESTIMATE`` when the
    output does not tell the sizes)."""
    endpoint = find_endpoint(endpoint_id)
    try:
        parsed = EditOutput.model_validate(output)
    except ValidationError:
        return USE_ESTIMATE, 0, 0
    cost = pixels = 0
    for image in parsed.images:
        if endpoint is None or not image.width or not image.height:
            return USE_ESTIMATE, len(parsed.images), 0
        size = Size(image.width, image.height)
        cost += image_cost_micros(size, endpoint.price_per_megapixel_micros)
        pixels += size.width * size.height
    return cost, len(parsed.images), pixels


class JobRef(Protocol):
    """What settlement needs to know of a forwarded request."""

    @property
    def team_id(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def reservation_id(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    @property
    def endpoint_id(self) -> str: ...


class Meter:
    """Settles reservations through ``settle.lua``."""

    def __init__(self, scripts: Scripts, metrics: Metrics) -> None:
        self._scripts = scripts
        self._metrics = metrics

    async def settle(
        self,
        team_id: str,
        key_id: str,
        reservation_id: str,
        *,
        outcome: str,
        endpoint_id: str,
        request_id: str = "",
        list_cost: int = 0,
        images: int = 0,
        pixels: int = 0,
    ) -> int | None:
        """Settle once; the amount charged, or None when it was settled before (or is gone)."""
        request_record = (
            redis_keys.request_record(team_id, request_id)
            if request_id
            else redis_keys.reservation(team_id, reservation_id)
        )
        result = await self._scripts.run(
            "settle",
            keys=[
                redis_keys.reservation(team_id, reservation_id),
                redis_keys.team_record(team_id),
                redis_keys.key_record(team_id, key_id),
                redis_keys.leases(team_id, key_id),
                redis_keys.open_reservations(team_id),
                redis_keys.spend(team_id),
                redis_keys.ledger(team_id),
                redis_keys.usage_log(team_id),
                request_record,
            ],
            args=[
                reservation_id,
                list_cost,
                images,
                pixels,
                outcome,
                request_id,
                redis_keys.usage_day_prefix(team_id),
            ],
        )
        if result[0] != "settled":
            return None
        charged = int(result[1])
        self._metrics.settlements.labels(outcome).inc()
        self._metrics.settled_cost.labels(endpoint_id).inc(charged)
        return charged

    async def settle_output(self, job: JobRef, output: Any) -> int | None:
        """Charge a job for the output fal produced."""
        cost, images, pixels = actual_list_cost(job.endpoint_id, output)
        return await self.settle(
            job.team_id,
            job.key_id,
            job.reservation_id,
            outcome=CHARGED,
            endpoint_id=job.endpoint_id,
            request_id=job.request_id,
            list_cost=cost,
            images=images,
            pixels=pixels,
        )

    async def settle_job(self, job: JobRef, outcome: str) -> int | None:
        """Refund a job in full (it failed, was cancelled, or is lost)."""
        return await self.settle(
            job.team_id,
            job.key_id,
            job.reservation_id,
            outcome=outcome,
            endpoint_id=job.endpoint_id,
            request_id=job.request_id,
        )

    async def settle_from_result(self, job: JobRef, response: httpx.Response) -> int | None:
        """Settle from fal's answer to a result fetch: charged on 200, refunded otherwise."""
        if response.status_code != 200:
            return await self.settle_job(job, FAILED)
        try:
            output = response.json()
        except ValueError:
            output = None
        return await self.settle_output(job, output)
