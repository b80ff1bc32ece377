"""A job's history as its pages show it: when it was submitted, first seen running and ended,
as the gateway recorded them, with the time between each, and fal's own inference time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.accounts.requests import OwnedRequest


@dataclass(frozen=True)
class Step:
    status: str
    """fal's status from this moment on: ``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED``."""
    label: str
    at: float | None
    """None: not seen (fal ran it while nobody polled its status, or not yet)."""
    after: float | None
    """Seconds since the step before (None for the first, or when either is unknown)."""


@dataclass(frozen=True)
class History:
    steps: list[Step]
    total: float | None
    """Seconds from submission to its end, once ended."""
    inference: float | None
    """The inference time fal reported, when its final status says it."""


def history(job: OwnedRequest, outcome: str | None) -> History:
    """``job``'s history; ``outcome`` is its settlement's (None while in flight or unknown)."""
    steps = [Step("IN_QUEUE", "Submitted to fal", job.created_at, None)]
    started = job.started_at
    steps.append(Step("IN_PROGRESS", "Seen running", started, _since(job.created_at, started)))
    if job.ended_at is not None:
        label = f"Ended: {outcome}" if outcome else "Ended"
        before = started if started is not None else job.created_at
        steps.append(Step("COMPLETED", label, job.ended_at, _since(before, job.ended_at)))
    return History(steps, _since(job.created_at, job.ended_at), _inference(job.final_status))


def _since(start: float | None, end: float | None) -> float | None:
    return max(end - start, 0.0) if start is not None and end is not None else None


def _inference(status: dict[str, Any] | None) -> float | None:
    metrics = (status or {}).get("metrics")
    value = metrics.get("inference_time") if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) else None
