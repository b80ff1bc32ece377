"""Finishing jobs: once fal says a job is COMPLETED, fetch its result and settle it.

Callers' status polls and streams, cancels and the reconciler all end up here; settlement itself
is idempotent, and this process also avoids fetching the same result twice at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from gateway.accounts.requests import OwnedRequest, RequestRegistry
from gateway.catalog import find_endpoint
from gateway.errors import FalError
from gateway.limits.settlement import LOST, Meter
from gateway.upstream import FalUpstream

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A forwarded request with an unsettled reservation."""

    team_id: str
    key_id: str
    reservation_id: str
    request_id: str
    endpoint_id: str

    @classmethod
    def of(cls, owned: OwnedRequest) -> Job:
        """The job behind a forwarded request's record."""
        return cls(owned.team_id, owned.key_id, owned.reservation_id, owned.id, owned.endpoint_id)

    @property
    def app_id(self) -> str:
        endpoint = find_endpoint(self.endpoint_id)
        return endpoint.app_id if endpoint else "/".join(self.endpoint_id.split("/")[:2])


class Completion:
    def __init__(self, meter: Meter, upstream: FalUpstream, requests: RequestRegistry) -> None:
        self._meter = meter
        self._upstream = upstream
        self._requests = requests
        self._running: dict[str, asyncio.Task[Any]] = {}

    def completed(self, owned: OwnedRequest, status: dict[str, Any]) -> None:
        """fal's status says ``owned`` is COMPLETED: in the background (once per process at a
        time), settle it if it is not yet, then remember the status to answer later polls."""
        if owned.final_status is not None or owned.id in self._running:
            return
        task = asyncio.create_task(self._record_logged(owned, {**status, "logs": None}))
        self._running[owned.id] = task
        task.add_done_callback(lambda _: self._running.pop(owned.id, None))

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _record_logged(self, owned: OwnedRequest, status: dict[str, Any]) -> None:
        try:
            if not owned.settled:
                await self.finish(Job.of(owned))
            await self._requests.complete(owned.team_id, owned.id, status)
        except FalError as exc:
            logger.warning("could not settle request %s yet: %s", owned.id, exc.detail)

    async def finish(self, job: Job) -> int | None:
        """Fetch the completed job's result and settle: charged for an output, refunded for an
        error outcome, refunded as lost when fal no longer knows the request."""
        response = await self._upstream.result(job.app_id, job.request_id)
        if response.status_code == 404:
            return await self._meter.settle_job(job, LOST)
        if response.status_code == 200 or "x-fal-request-id" in response.headers:
            return await self._meter.settle_from_result(job, response)
        self._upstream.check("result", response)
        return None
