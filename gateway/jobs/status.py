"""What a job's status is, for the caller's polls and streams: from the gateway's record once its
end is known, else fal's (shared by concurrent polls). Every status seen from fal is shown to the
finisher, which records the job's end once it says COMPLETED."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from gateway.accounts.requests import OwnedRequest
from gateway.jobs.finisher import Ending, Finisher, Job, from_result
from gateway.limits.settlement import CANCELLED
from gateway.telemetry.metrics import Metrics
from gateway.upstream.client import REQUEST_ID_HEADER
from gateway.upstream.links import Links
from gateway.upstream.statuses import StatusCoalescer


@dataclass(frozen=True)
class StatusView:
    """A status answer as the caller sees it (URLs pointing at the gateway)."""

    body: Any
    status_code: int
    headers: dict[str, str]


class JobStatus:
    def __init__(
        self, statuses: StatusCoalescer, finisher: Finisher, links: Links, metrics: Metrics
    ) -> None:
        self._statuses = statuses
        self._finisher = finisher
        self._links = links
        self._metrics = metrics

    def known(self, owned: OwnedRequest, logs: bool) -> dict[str, Any] | None:
        """The request's final status from the gateway's own record, when its end is known and
        the caller did not ask for logs (those only fal has); else None."""
        if owned.final_status is None or logs:
            return None
        self._metrics.status_from_state.inc()
        known: dict[str, Any] = self._links.rewrite_queue_body(owned.final_status, owned.app_id)
        return known

    async def poll(self, owned: OwnedRequest, logs: bool) -> StatusView:
        """The answer to a status poll of the caller's own request."""
        known = self.known(owned, logs)
        if known is not None:
            return StatusView(known, 200, {REQUEST_ID_HEADER: owned.id})
        answer, shared = await self._statuses.status(owned.account, owned.app_id, owned.id, logs)
        self._metrics.status_answers.labels("shared" if shared else "upstream").inc()
        return StatusView(self.seen(owned, answer.body), answer.status_code, answer.headers)

    def seen(self, owned: OwnedRequest, status: Any) -> Any:
        """A status fal reported (a poll's answer or a stream's event), as the caller sees it."""
        self._finisher.status_seen(owned, status)
        return self._links.rewrite_queue_body(status, owned.app_id)

    async def result_seen(self, owned: OwnedRequest, response: httpx.Response) -> None:
        """The caller fetched the result: a 200 is the job's end, if not recorded yet."""
        if response.status_code == 200 and not owned.settled:
            await self._finisher.finish(Job.of(owned), from_result(owned.id, response))

    async def cancelling(self, owned: OwnedRequest) -> None:
        """The caller asks to cancel ``owned``: noted first, so that an end without output
        counts as its cancellation however it is seen (``Finisher.cancel_asked``)."""
        if not owned.settled:
            await self._finisher.cancel_asked(owned)

    async def cancelled(self, owned: OwnedRequest, status_code: int, body: Any) -> None:
        """fal answered a cancel: a job that left the queue before any work is refunded (fal's
        own webhook for it is relayed when it comes)."""
        self._statuses.forget(owned.app_id, owned.id)
        if status_code == 200 and isinstance(body, dict) and body.get("status") == "OK":
            await self._finisher.finish(Job.of(owned), Ending(CANCELLED))
