"""Status polls coalesced per process: at most one upstream call per request per interval.

fal's clients poll every 100 ms (Python) or 500 ms (JS), and a request may have several pollers.
Polls of the same request (and the same ``logs`` choice) that arrive while a call is in flight
wait for it; polls within ``interval`` seconds of the last answer reuse it. So the upstream calls
a job costs depend on how long it runs, not on how often it is polled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gateway.upstream.client import FalUpstream, json_body, relayed_headers
from gateway.upstream.pool import AccountPool

_SWEEP_EVERY = 1024
"""Stale answers are dropped every this many fetches (they are never served: they are old)."""


@dataclass(frozen=True)
class StatusAnswer:
    """fal's answer to a status poll, kept to answer other polls of the same request."""

    status_code: int
    headers: dict[str, str]
    body: Any
    fetched_at: float


class StatusCoalescer:
    """Upstream status calls shared by the polls of one request."""

    def __init__(self, upstream: FalUpstream, accounts: AccountPool, interval: float) -> None:
        self._upstream = upstream
        self._accounts = accounts
        self._interval = interval
        self._answers: dict[tuple[str, str, bool], StatusAnswer] = {}
        self._in_flight: dict[tuple[str, str, bool], asyncio.Task[StatusAnswer]] = {}
        self._fetches = 0

    async def status(
        self, account: str, app_id: str, request_id: str, logs: bool
    ) -> tuple[StatusAnswer, bool]:
        """fal's status of a request (on the fal ``account`` that took it), and whether this
        poll shared another poll's call."""
        key = (app_id, request_id, logs)
        answer = self._answers.get(key)
        if answer is not None and time.monotonic() - answer.fetched_at < self._interval:
            return answer, True
        call = self._in_flight.get(key)
        shared = call is not None
        if call is None:
            # A task of its own, so a poller hanging up does not cancel the others' call.
            call = asyncio.create_task(self._fetch(account, app_id, request_id, logs))
            self._in_flight[key] = call
            call.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(call), shared

    def forget(self, app_id: str, request_id: str) -> None:
        """Drop the answers kept for a request (its state just changed, e.g. by a cancel)."""
        for logs in (False, True):
            self._answers.pop((app_id, request_id, logs), None)

    async def _fetch(self, account: str, app_id: str, request_id: str, logs: bool) -> StatusAnswer:
        credential = await self._accounts.credential(account)
        response = await self._upstream.status(credential, app_id, request_id, logs)
        self._upstream.check("status", response, credential.account)
        return StatusAnswer(
            response.status_code, relayed_headers(response), json_body(response), time.monotonic()
        )

    def _finished(self, key: tuple[str, str, bool], call: asyncio.Task[StatusAnswer]) -> None:
        del self._in_flight[key]
        if call.cancelled() or call.exception() is not None:
            return
        self._remember(key, call.result())

    def _remember(self, key: tuple[str, str, bool], answer: StatusAnswer) -> None:
        if self._interval <= 0:
            return
        self._answers[key] = answer
        self._fetches += 1
        if self._fetches % _SWEEP_EVERY == 0:
            oldest = time.monotonic() - self._interval
            for stale in [k for k, a in self._answers.items() if a.fetched_at < oldest]:
                del self._answers[stale]
