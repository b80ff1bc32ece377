"""The JSON bodies of fal's queue API, built from a job (``fal-protocol.md`` §1-3)."""

from __future__ import annotations

from typing import Any

from gateway.emulator.jobs import Job, JobState


def request_urls(job: Job) -> dict[str, str]:
    """``response_url``, ``status_url`` and ``cancel_url``: owner/app only, the subpath dropped."""
    base = f"{job.base_url}/{job.app_id}/requests/{job.id}"
    return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}


def submit_body(job: Job, queue_position: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": JobState.IN_QUEUE.value,
        "request_id": job.id,
        **request_urls(job),
        "queue_position": queue_position,
        "logs": None,
        "metrics": {},
    }
    if job.webhook_url is not None:
        body["gateway_request_id"] = job.id
    return body


def status_body(
    job: Job, queue_position: int | None, logs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """A status answer. ``queue_position`` and ``logs`` are always present (null when not
    applicable), because fal-client indexes them without checking."""
    body: dict[str, Any] = {
        "status": job.state.value,
        "request_id": job.id,
        **request_urls(job),
        "queue_position": queue_position if job.state is JobState.IN_QUEUE else None,
        "logs": logs,
    }
    outcome = job.outcome
    if outcome is not None:
        body["metrics"] = {"inference_time": outcome.inference_time}
        if not outcome.ok:
            body["error"] = outcome.body.get("detail")
            body["error_type"] = outcome.error_type
    return body
