"""The one finisher: every path that sees a job end calls it.

fal's webhook, a status poll or stream that sees COMPLETED, a result fetch, the reconciler and a
cancel all describe the end they saw as an ``Ending`` and hand it to ``Finisher.finish``, which
records it with one call of ``finish.lua``: the reservation settled (charged for the output, or
refunded), fal's final status remembered for later polls, and the caller's webhook queued. The
script does each part at most once, so paths may race and repeat freely.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.accounts.requests import OwnedRequest, stored_status
from gateway.catalog import find_endpoint
from gateway.errors import FalError
from gateway.limits.settlement import (
    CHARGED,
    FAILED,
    FAILURES,
    HUNG_UP,
    LOST,
    USE_ESTIMATE,
    actual_list_cost,
)
from gateway.store import scripts as store
from gateway.store.scripts import Finished, Scripts
from gateway.telemetry import tracing
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import OFF, Tracing
from gateway.upstream import FalUpstream
from gateway.upstream.client import REQUEST_ID_HEADER, json_body
from gateway.upstream.links import Links
from gateway.upstream.pool import AccountPool
from gateway.web import jsoncodec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A forwarded request and the reservation that pays for it."""

    team_id: str
    key_id: str
    reservation_id: str
    request_id: str
    """fal's request id; empty until fal accepted the job (and for refusals before that)."""
    endpoint_id: str
    webhook_url: str | None = None
    """Where the caller asked its webhook to go (``?fal_webhook=``);
    ``WEBHOOK_ON_RESERVATION`` when only the reservation holds it."""
    account: str = ""
    """The fal account the job is on (empty: not chosen yet, or recorded before the pool)."""
    trace: str = ""
    """The ``traceparent`` of the request that submitted it, when traced: its later hops join
    that trace (``telemetry.tracing``)."""

    @classmethod
    def of(cls, owned: OwnedRequest) -> Job:
        """The job behind a forwarded request's record."""
        return cls(
            owned.team_id,
            owned.key_id,
            owned.reservation_id,
            owned.id,
            owned.endpoint_id,
            store.WEBHOOK_ON_RESERVATION if owned.webhook else None,
            owned.account,
            owned.trace,
        )

    @property
    def attributes(self) -> dict[str, str]:
        """What names the job in its spans (never its input, output or any secret)."""
        named = {tracing.TEAM: self.team_id, tracing.KEY: self.key_id}
        named[tracing.ENDPOINT] = self.endpoint_id
        if self.request_id:
            named[tracing.REQUEST_ID] = self.request_id
        if self.account:
            named[tracing.ACCOUNT] = self.account
        return named

    @property
    def app_id(self) -> str:
        endpoint = find_endpoint(self.endpoint_id)
        return endpoint.app_id if endpoint else "/".join(self.endpoint_id.split("/")[:2])


@dataclass(frozen=True)
class Ending:
    """What was seen of a job's end."""

    outcome: str
    """``CHARGED`` for an output; any other outcome is a full refund."""
    output: Any = None
    """fal's output, priced when the outcome is ``CHARGED``."""
    final_status: dict[str, Any] | None = None
    """fal's status of the finished request, to answer later polls with."""
    event: dict[str, Any] | None = None
    """The webhook payload for the caller, in fal's shape (URLs not yet rewritten)."""


def completed_status(request_id: str) -> dict[str, Any]:
    """fal's status of a request that finished, as later polls are answered when only its end
    is known. (A failure's status carries fal's ``error`` and ``error_type``, which an ending
    does not state in the same form, so only successes are answered this way.)"""
    return {"status": "COMPLETED", "request_id": request_id, "logs": None, "metrics": {}}


RELAYED_FIELDS = ("request_id", "gateway_request_id", "status", "payload", "error", "payload_error")
"""fal's webhook payload fields relayed to the caller (fal-protocol.md §6)."""


def from_fal_webhook(event: dict[str, Any]) -> Ending:
    """The ending fal's webhook reports: charged for its payload on ``OK``, else refunded."""
    request_id = str(event.get("request_id", ""))
    relayed = {name: event[name] for name in RELAYED_FIELDS if name in event}
    if event.get("status") == "OK":
        return Ending(CHARGED, event.get("payload"), completed_status(request_id), relayed)
    return Ending(FAILED, event=relayed)


def from_result(request_id: str, response: httpx.Response) -> Ending:
    """The ending a result fetch shows: charged on 200, refunded for the job's own error. The
    caller's webhook says what fal's would have (fal-protocol.md §6)."""
    try:
        body = json_body(response)
    except FalError:
        body = None
    event: dict[str, Any] = {"request_id": request_id, "gateway_request_id": request_id}
    if response.status_code == 200:
        event |= {"status": "OK", "payload": body}
        return Ending(CHARGED, body, completed_status(request_id), event)
    event |= {
        "status": "ERROR",
        "error": f"Invalid status code: {response.status_code}",
        "payload": body,
    }
    return Ending(FAILED, event=event)


class Finisher:
    def __init__(
        self,
        scripts: Scripts,
        upstream: FalUpstream,
        accounts: AccountPool,
        links: Links,
        metrics: Metrics,
        tracing: Tracing = OFF,
    ) -> None:
        self._tracing = tracing
        self._scripts = scripts
        self._upstream = upstream
        self._accounts = accounts
        self._links = links
        self._metrics = metrics
        self._background: dict[str, asyncio.Task[None]] = {}
        """Background work per request (its finish, or noting it started), one at a time."""

    async def finish(self, job: Job, ending: Ending) -> Finished:
        """Record ``ending`` (one round trip), and give back the slot the job held on its fal
        account (another); parts already recorded stay as they were."""
        attributes = {**job.attributes, tracing.OUTCOME: ending.outcome}
        with self._tracing.job_span("settlement", job.trace, attributes) as span:
            finished = await self._record(job, ending)
            span.set_attribute("gateway.settlement", finished.settlement)
        # Every time, not only when settled by this call: a finish that crashed after settling
        # would otherwise leave the slot held until it lapses.
        await self._accounts.release(job.account, job.reservation_id)
        return finished

    async def _record(self, job: Job, ending: Ending) -> Finished:
        list_cost = images = pixels = 0
        if ending.outcome == CHARGED:
            list_cost, images, pixels = actual_list_cost(job.endpoint_id, ending.output)
        elif ending.outcome == HUNG_UP:
            list_cost = USE_ESTIMATE
        webhook = job.webhook_url if ending.event is not None else None
        finished = await self._scripts.finish(
            store.Ending(
                team_id=job.team_id,
                key_id=job.key_id,
                reservation_id=job.reservation_id,
                request_id=job.request_id,
                outcome=ending.outcome,
                list_cost=list_cost,
                images=images,
                pixels=pixels,
                final_status=stored_status(job.request_id, ending.final_status)
                if ending.final_status
                else "",
                webhook_url=webhook or "",
                webhook_body=jsoncodec.dumps(self._links.rewrite(ending.event)) if webhook else "",
                failed=ending.outcome in FAILURES,
                trace=self._tracing.parent() if webhook else "",
            )
        )
        if finished.settlement == "settled":
            self._metrics.settlements.labels(ending.outcome).inc()
            self._metrics.settled_cost.labels(job.endpoint_id).inc(finished.charged)
            if finished.overrun:
                self._metrics.settlement_overrun.labels(job.endpoint_id).inc(finished.overrun)
                logger.warning(
                    "request %s cost %d micros more than reserved; not charged",
                    job.request_id,
                    finished.overrun,
                )
        return finished

    async def fetch_and_finish(
        self, job: Job, status: dict[str, Any] | None = None
    ) -> Finished | None:
        """For a job fal says has finished (with ``status``, when a poll saw it): fetch its
        result and record the ending (refunded as lost when fal no longer knows the request).
        None when fal's answer says neither."""
        credential = await self._accounts.credential(job.account)
        response = await self._upstream.result(credential, job.app_id, job.request_id)
        if response.status_code == 404 and REQUEST_ID_HEADER not in response.headers:
            return await self.finish(job, Ending(LOST))
        if response.status_code == 200 or REQUEST_ID_HEADER in response.headers:
            ending = from_result(job.request_id, response)
            if status is not None:
                ending = dataclasses.replace(ending, final_status=status)
            return await self.finish(job, ending)
        self._upstream.check("result", response, credential.account)
        return None

    def status_seen(self, owned: OwnedRequest, status: Any) -> None:
        """A status poll or stream saw ``owned``'s status. The first time it says IN_PROGRESS,
        note when, for the job's history; once it says COMPLETED, finish the job unless its end
        is already known. Both in the background, once per process at a time."""
        state = status.get("status") if isinstance(status, dict) else None
        if state == "IN_PROGRESS" and owned.started_at is None:
            self._in_background(f"started:{owned.id}", self._started_logged(owned))
        elif state == "COMPLETED" and owned.final_status is None:
            final = {**status, "logs": None}
            self._in_background(owned.id, self._finish_logged(Job.of(owned), owned.settled, final))

    def _in_background(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        if name in self._background:
            work.close()
            return
        task = asyncio.create_task(work)
        self._background[name] = task
        task.add_done_callback(lambda _: self._background.pop(name, None))

    async def close(self) -> None:
        tasks = list(self._background.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _started_logged(self, owned: OwnedRequest) -> None:
        try:
            await self._scripts.job_started(owned.team_id, owned.id)
        except FalError as exc:  # only the history misses it
            logger.warning("could not note that request %s started: %s", owned.id, exc.detail)

    async def _finish_logged(self, job: Job, settled: bool, status: dict[str, Any]) -> None:
        with self._tracing.job_span("finish in background", job.trace, job.attributes):
            try:
                if settled:
                    # Its end was recorded already (webhook queued too): only the status is left.
                    await self.finish(job, Ending(CHARGED, final_status=status))
                else:
                    await self.fetch_and_finish(job, status)
            except FalError as exc:
                logger.warning("could not finish request %s yet: %s", job.request_id, exc.detail)
