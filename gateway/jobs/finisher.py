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
from opentelemetry.trace import SpanKind

from gateway.accounts.requests import CANCEL_ASKED, STARTED, OwnedRequest, stored_status
from gateway.accounts.teams import TeamStore
from gateway.catalog import find_endpoint
from gateway.catalog.pricing import Price
from gateway.errors import FalError
from gateway.limits import charge_rules
from gateway.limits.settlement import (
    CANCELLED,
    CHARGED,
    FAILED,
    FAILURES,
    HUNG_UP,
    LOST,
    USE_ESTIMATE,
    actual_list_cost,
)
from gateway.policy.limits import DEFAULT_CHARGE_RULE
from gateway.store import redis_keys
from gateway.store import script_values as store
from gateway.store.script_values import Finished
from gateway.store.scripts import Scripts
from gateway.telemetry import tracing
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.tracing import OFF, Tracing
from gateway.upstream import FalUpstream
from gateway.upstream.client import REQUEST_ID_HEADER, json_body
from gateway.upstream.fal_billing import billable_units
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
    cancel_asked: bool = False
    """Its caller asked to cancel it: an end without output is a cancellation, not a failure."""
    price: Price | None = None
    """The price it was admitted at, which it is charged at (None: admitted before prices were
    kept, charged at the catalog's)."""
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
            owned.cancel_asked,
            owned.price,
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
    """``CHARGED`` for an output; other outcomes are refunded, but for what the team's charge
    rules price (``limits.charge_rules``) and a sync hang-up (``HUNG_UP``)."""
    output: Any = None
    """fal's output, priced when the outcome is ``CHARGED``."""
    final_status: dict[str, Any] | None = None
    """fal's status of the finished request, to answer later polls with."""
    event: dict[str, Any] | None = None
    """The webhook payload for the caller, in fal's shape (URLs not yet rewritten)."""
    billable_units: str = ""
    """What fal says it billed for the job (``x-fal-billable-units``); empty: not said."""
    ran: bool = False
    """A cancellation of a job that ran (priced by the team's ``cancelled_running`` rule); a
    cancellation in the queue, or of a sync run, is never charged here."""


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
    units = billable_units(response)
    if response.status_code == 200:
        event |= {"status": "OK", "payload": body}
        return Ending(CHARGED, body, completed_status(request_id), event, units)
    event |= {
        "status": "ERROR",
        "error": f"Invalid status code: {response.status_code}",
        "payload": body,
    }
    return Ending(FAILED, event=event, billable_units=units)


class Finisher:
    def __init__(
        self,
        scripts: Scripts,
        upstream: FalUpstream,
        accounts: AccountPool,
        links: Links,
        metrics: Metrics,
        teams: TeamStore,
        tracing: Tracing = OFF,
    ) -> None:
        self._tracing = tracing
        self._scripts = scripts
        self._teams = teams
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
        if ending.outcome == FAILED and job.cancel_asked:
            ending = dataclasses.replace(ending, outcome=CANCELLED, ran=True)
        if ending.outcome == CHARGED:
            list_cost, images, pixels = actual_list_cost(job.endpoint_id, ending.output, job.price)
        elif ending.outcome == HUNG_UP:
            list_cost = USE_ESTIMATE
        elif ending.outcome == FAILED or ending.ran:
            list_cost = await self._nothing_produced_cost(job, ending)
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
                usage_fields=("billable_units", ending.billable_units),
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

    async def cancel_asked(self, owned: OwnedRequest) -> None:
        """Note that ``owned``'s caller asked to cancel it, before fal is asked to: whichever
        path then sees it end without output (a poll, fal's webhook, the reconciler, which reads
        the reservation) records a cancellation, priced by the ``cancelled_running`` rule."""
        reservation = redis_keys.reservation(owned.team_id, owned.reservation_id)
        await self._scripts.job_seen(owned.team_id, owned.id, CANCEL_ASKED, reservation)

    async def _nothing_produced_cost(self, job: Job, ending: Ending) -> int:
        """The list-price cost of a failed job, or of one cancelled while it ran, by its
        team's rule (``limits.charge_rules``)."""
        team = await self._teams.get(job.team_id)
        rule = DEFAULT_CHARGE_RULE
        if team is not None:
            rule = team.failed_job if ending.outcome == FAILED else team.cancelled_running
        endpoint = find_endpoint(job.endpoint_id)
        price = job.price or (endpoint.catalog_price if endpoint else None)
        if price is None:
            return 0
        return charge_rules.list_cost(rule, price, ending.billable_units)

    async def finish_from_webhook(self, owned: OwnedRequest, event: dict[str, Any]) -> Finished:
        """Record the end fal's webhook reports, in the job's trace. fal's webhook does not say
        what fal billed, so unless the job's end is already recorded, its result is fetched for
        that first (a failed fetch leaves the units unknown)."""
        ending = from_fal_webhook(event)
        job = Job.of(owned)
        self._tracing.annotate(job.attributes)
        with self._tracing.job_span("fal webhook", job.trace, job.attributes, SpanKind.CONSUMER):
            if not owned.settled:
                ending = dataclasses.replace(ending, billable_units=await self._units_of(job))
            return await self.finish(job, ending)

    async def _units_of(self, job: Job) -> str:
        try:
            credential = await self._accounts.credential(job.account)
            response = await self._upstream.result(credential, job.app_id, job.request_id)
        except FalError as exc:
            logger.warning("billable units of %s unknown: %s", job.request_id, exc.detail)
            return ""
        return billable_units(response)

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
            await self._scripts.job_seen(owned.team_id, owned.id, STARTED)
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
