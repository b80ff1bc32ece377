"""Submitting a job: prepare the body under the key's policy, admit it, forward it to fal, and
bind fal's request id to the reservation, or refund it when fal does not take the job.

Queue submits (``submit``) and sync runs (``run``) share the admission; the proxy reaches both
through the gateway's own routes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from gateway.accounts.requests import RequestRegistry
from gateway.accounts.teams import TeamStore
from gateway.accounts.tokens import Token
from gateway.catalog import Endpoint
from gateway.errors import FalError, PaymentRequired, RequestValidationFailed, StoreUnavailable
from gateway.jobs.finisher import Ending, Finisher, Job
from gateway.jobs.input_probe import InputProbe
from gateway.jobs.prepare import Submission, prepare
from gateway.limits.admission import Admission, Admitter
from gateway.limits.settlement import CANCELLED, CHARGED, FAILED, HUNG_UP, REFUSED
from gateway.policy.cache import PolicyCache, StalePolicy
from gateway.relay.targets import TargetPolicy, TargetRefused
from gateway.settings import Settings
from gateway.upstream import FalUpstream
from gateway.upstream.client import REQUEST_ID_HEADER, json_body
from gateway.upstream.failover import on_some_account
from gateway.upstream.fal_billing import billable_units, tagged
from gateway.upstream.links import Links
from gateway.upstream.pool import AccountPool


@dataclass(frozen=True)
class Accepted:
    """A job fal answered: its response and JSON body, and what the gateway admitted."""

    response: httpx.Response
    body: Any
    submission: Submission
    admission: Admission


@dataclass(frozen=True)
class Call:
    """A caller's submit or sync run, as the gateway received it (its key and origin already
    checked: ``http.access``)."""

    token: Token
    endpoint: Endpoint
    body: bytes
    headers: dict[str, str]
    """The caller's headers to forward to fal."""


def fal_headers(call: Call) -> dict[str, str]:
    """The caller's headers for fal, tagged with its team and key (``X-Fal-Tags``), so that
    fal's own usage reports split by customer."""
    return tagged(call.headers, {"team": call.token.team_id, "key": call.token.key_id})


SYNC_SETTLE_MARGIN = 60.0
"""Seconds after a sync run's timeout within which the gateway records how it ended."""


class HungUp(Exception):
    """The caller of a sync run hung up before fal answered; the run was dropped."""


@dataclass
class _Held:
    """A job and the fal account it holds a slot on, as the account is chosen."""

    job: Job

    def chosen(self, account: str) -> None:
        self.job = dataclasses.replace(self.job, account=account)


class Submitter:
    def __init__(
        self,
        settings: Settings,
        policies: PolicyCache,
        admitter: Admitter,
        upstream: FalUpstream,
        accounts: AccountPool,
        links: Links,
        requests: RequestRegistry,
        finisher: Finisher,
        targets: TargetPolicy,
        probe: InputProbe,
        teams: TeamStore,
    ) -> None:
        self._settings = settings
        self._policies = policies
        self._admitter = admitter
        self._upstream = upstream
        self._accounts = accounts
        self._links = links
        self._requests = requests
        self._finisher = finisher
        self._targets = targets
        self._probe = probe
        self._teams = teams

    async def submit(self, call: Call, webhook_url: str | None) -> Accepted:
        """A queue submit: admitted, forwarded with the gateway's own webhook, bound to fal's
        request id. A refusal by fal is refunded and its answer returned as fal gave it."""
        if webhook_url is not None:
            await self._check_webhook(webhook_url)
        token, endpoint = call.token, call.endpoint
        submission, admission, job = await self._admit(call)
        relay_url = f"{self._links.public_url}/webhooks/fal?{urlencode({'team': token.team_id})}"
        held = _Held(job)
        try:
            credential, response = await on_some_account(
                self._accounts,
                job.reservation_id,
                lambda credential: self._upstream.submit(
                    credential, endpoint.id, submission.body, fal_headers(call), relay_url
                ),
                held.chosen,
            )
            job = held.job
            self._upstream.check("submit", response, credential.account)
            body = json_body(response)
        except FalError:
            await self._finisher.finish(held.job, Ending(REFUSED))
            raise
        if not response.is_success:
            await self._finisher.finish(job, Ending(REFUSED))
        else:
            await self._requests.record(
                token.team_id,
                token.key_id,
                body["request_id"],
                endpoint,
                admission.reservation_id,
                credential.account,
                webhook_url,
            )
        return Accepted(response, body, submission, admission)

    async def run(self, call: Call, hung_up: Awaitable[None]) -> Accepted:
        """A sync run: admitted, then held until fal answers with the output, which is charged
        at once. If ``hung_up`` completes first, the call to fal is dropped and ``HungUp``
        raised; fal runs and bills the job all the same, so it is charged at its reservation,
        unless the team's ``sync_hangup`` rule is ``refund``."""
        # fal names a sync run only when it answers: never count it abandoned before then.
        unbound_for = self._settings.upstream_sync_timeout + SYNC_SETTLE_MARGIN
        submission, admission, job = await self._admit(call, unbound_for)
        held = _Held(job)
        running = asyncio.ensure_future(
            on_some_account(
                self._accounts,
                job.reservation_id,
                lambda credential: self._upstream.run(
                    credential, call.endpoint.id, submission.body, fal_headers(call)
                ),
                held.chosen,
            )
        )
        gone = asyncio.ensure_future(hung_up)
        await asyncio.wait({running, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not running.done():
            running.cancel()  # the connection to fal is closed; fal runs and bills it anyway
            await asyncio.gather(running, return_exceptions=True)
            team = await self._teams.get(job.team_id)
            refund = team is not None and team.sync_hangup == "refund"
            await self._finisher.finish(held.job, Ending(CANCELLED if refund else HUNG_UP))
            if not held.job.account:  # cut off while choosing: a slot may have been taken
                await self._accounts.release_everywhere(job.reservation_id)
            raise HungUp
        try:
            credential, response = running.result()
            self._upstream.check("run", response, credential.account)
            body = json_body(response)
        except FalError:
            await self._finisher.finish(held.job, Ending(REFUSED))
            raise
        request_id = response.headers.get(REQUEST_ID_HEADER, "")
        job = dataclasses.replace(held.job, request_id=request_id)
        units = billable_units(response)
        if response.status_code == 200:
            await self._finisher.finish(job, Ending(CHARGED, body, billable_units=units))
        else:
            await self._finisher.finish(job, Ending(FAILED, billable_units=units))
        return Accepted(response, body, submission, admission)

    async def _admit(
        self, call: Call, unbound_for: float = 0.0
    ) -> tuple[Submission, Admission, Job]:
        """Prepare the body under the key's policy and admit it (one Redis round trip, unless
        the cached policy turns out stale at admission, or changed since a refusal it made:
        then it is read again once)."""
        token, endpoint = call.token, call.endpoint
        secret_hash = token.secret_hash
        for _ in range(2):
            rules = await self._policies.rules(token.team_id, token.key_id, secret_hash)
            effective_policy = rules.effective()
            try:
                async with self._policies.checking(token.team_id, token.key_id, rules):
                    submission = await prepare(
                        endpoint,
                        call.body,
                        effective_policy,
                        self._settings.max_data_uri_bytes,
                        self._links.original,
                        functools.partial(self._probe.size_of, key_id=token.key_id),
                    )
                admission = await self._admitter.admit(
                    token, rules, endpoint.id, submission.estimate.cost_micros, unbound_for
                )
            except StalePolicy:
                self._policies.forget(token.team_id, token.key_id)
                continue
            except PaymentRequired as exc:
                if submission.estimate.exact:
                    raise
                raise PaymentRequired(
                    f"{exc.detail}: the size of image_url could not be read, so the largest "
                    f"output it can produce was priced ({submission.estimate.cost_micros} "
                    "micro-units at list price); inline the image or state the output size",
                    error_type=exc.error_type,
                    headers=exc.headers,
                ) from exc
            job = Job(token.team_id, token.key_id, admission.reservation_id, "", endpoint.id)
            return submission, admission, job
        raise StoreUnavailable("The key's policy is changing; try again")

    async def _check_webhook(self, url: str) -> None:
        """A caller's ``fal_webhook`` must be a public https URL (refused before any charge)."""
        try:
            await self._targets.resolve(url)
        except TargetRefused as exc:
            raise RequestValidationFailed(
                [{"loc": ["query", "fal_webhook"], "msg": str(exc), "type": "webhook_target"}]
            ) from exc
