"""Settlement: what a finished job costs, and the outcomes a reservation can end with.

The actual list price is computed from the output's ``images[]`` (width x height each) at the
price the job was admitted at, which its reservation and request record keep, so a price change
while it runs does not touch it; an image without dimensions is charged at the admission
estimate. A sync run whose caller hung up is charged at the estimate (its output is never seen).
Jobs that fail, submits fal refuses, cancelled jobs and jobs fal no longer knows are refunded in
full (``jobs.finisher`` records the ending with ``finish.lua``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateway.catalog import Size, find_endpoint
from gateway.catalog.outputs import EditOutput
from gateway.catalog.pricing import Price

CHARGED = "charged"
"""Charged for the output fal produced; every other outcome is a full refund."""
FAILED = "failed"
REFUSED = "refused"
LOST = "lost"
ABANDONED = "abandoned"
CANCELLED = "cancelled"
"""Cancelled in fal's queue, or a sync run whose caller hung up, in a team that refunds those."""
HUNG_UP = "hung_up"
"""A sync run whose caller hung up, charged at its reservation: fal bills such runs in full."""
FAILURES = frozenset({FAILED, REFUSED, LOST, ABANDONED})
"""Outcomes counted as failed jobs in the daily usage: nothing produced, and not by the
caller's choice (a cancellation is not a failure)."""
USE_ESTIMATE = -1
"""Passed as the actual cost when it cannot be read from the output: charge the estimate."""


def actual_list_cost(
    endpoint_id: str, output: Any, price: Price | None = None
) -> tuple[int, int, int]:
    """The list price at ``price`` (None: the catalog's, for jobs admitted before prices were
    kept), image count and pixel count of an output (``USE_ESTIMATE`` when the output does not
    tell the sizes)."""
    endpoint = find_endpoint(endpoint_id)
    price = price or (endpoint.catalog_price if endpoint else None)
    try:
        parsed = EditOutput.model_validate(output)
    except ValidationError:
        return USE_ESTIMATE, 0, 0
    sizes = []
    for image in parsed.images:
        if price is None or not image.width or not image.height:
            return USE_ESTIMATE, len(parsed.images), 0
        sizes.append(Size(image.width, image.height))
    pixels = sum(size.width * size.height for size in sizes)
    return (price.cost(sizes) if price else 0), len(parsed.images), pixels
