"""Status streams: one upstream stream per request, shared by everyone watching it.

The first watcher of a request opens fal's status stream; a pump reads its events, passes each
through ``JobStatus.seen`` once (so a COMPLETED event finishes the job once) and hands it to every
watcher. A watcher that joins later is first given the events so far. The upstream stream closes
when fal ends it or when the last watcher leaves. Each key may hold ``per_key`` open streams in a
process; beyond that a watch is refused with 429, so one tenant's streams cannot take the
connections every other tenant's submits and polls need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import EventSource

from gateway.accounts.requests import OwnedRequest
from gateway.errors import UpstreamError
from gateway.jobs.status import JobStatus
from gateway.limits.in_flight import PerKeyInFlight
from gateway.upstream import FalUpstream
from gateway.upstream.client import json_body
from gateway.upstream.pool import AccountPool
from gateway.web import jsoncodec

logger = logging.getLogger(__name__)

HISTORY = 512
"""Events kept for watchers that join late (a job's status stream has a handful)."""
_END = None

ChannelKey = tuple[str, str, bool]


@dataclass
class _Channel:
    """One upstream status stream and the queues of its watchers."""

    opened: asyncio.Future[httpx.Response] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    history: list[dict[str, Any]] = field(default_factory=list)
    watchers: set[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=set)
    ended: bool = False
    pump: asyncio.Task[None] | None = None

    def publish(self, event: dict[str, Any] | None) -> None:
        if event is _END:
            self.ended = True
        elif len(self.history) < HISTORY:
            self.history.append(event)
        for queue in self.watchers:
            queue.put_nowait(event)


@dataclass
class Watch:
    """A caller's view of a status stream: fal's refusal to relay as it is, or the events."""

    refused: tuple[httpx.Response, Any] | None
    events: AsyncIterator[dict[str, Any]]
    close: Callable[[], Awaitable[None]]
    """Leave the stream (idempotent; the events iterator also does it when it ends)."""


class StatusStreams:
    def __init__(
        self, upstream: FalUpstream, accounts: AccountPool, job_status: JobStatus, per_key: int
    ) -> None:
        self._upstream = upstream
        self._accounts = accounts
        self._job_status = job_status
        self._channels: dict[ChannelKey, _Channel] = {}
        self._open = PerKeyInFlight(
            per_key, f"At most {per_key} status streams may be open per key", "too_many_streams"
        )

    async def watch(self, owned: OwnedRequest, logs: bool) -> Watch:
        """Join (or open) the request's status stream; 429 beyond the key's open streams."""
        self._open.take(owned.key_id)
        channel_key = (owned.app_id, owned.id, logs)
        channel = self._channels.get(channel_key)
        if channel is None:
            channel = self._channels[channel_key] = _Channel()
            # Every watcher may have left before fal answered: the outcome is then nobody's.
            channel.opened.add_done_callback(_retrieve)
            channel.pump = asyncio.create_task(self._pump(channel_key, channel, owned, logs))
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        for event in channel.history:
            queue.put_nowait(event)
        if channel.ended:
            queue.put_nowait(_END)
        channel.watchers.add(queue)
        left = False

        async def leave() -> None:
            nonlocal left
            if left:
                return
            left = True
            self._open.give_back(owned.key_id)
            channel.watchers.discard(queue)
            if not channel.watchers:
                await self._drop(channel_key, channel)

        try:
            response = await asyncio.shield(channel.opened)
        except BaseException:
            await leave()
            raise
        if not response.is_success:
            await leave()
            return Watch((response, json_body(response)), _no_events(), leave)

        async def events() -> AsyncIterator[dict[str, Any]]:
            try:
                while (event := await queue.get()) is not _END:
                    yield event
            finally:
                await leave()

        return Watch(None, events(), leave)

    async def _drop(self, channel_key: ChannelKey, channel: _Channel) -> None:
        """The last watcher left: close the upstream stream."""
        if self._channels.get(channel_key) is channel:
            del self._channels[channel_key]
        if channel.pump is not None and not channel.pump.done():
            channel.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await channel.pump

    async def _pump(
        self, channel_key: ChannelKey, channel: _Channel, owned: OwnedRequest, logs: bool
    ) -> None:
        try:
            credential = await self._accounts.credential(owned.account)
            stream = self._upstream.status_stream(credential, owned.app_id, owned.id, logs)
            async with stream as upstream:
                if not upstream.is_success:
                    await upstream.aread()
                    channel.opened.set_result(upstream)
                    return
                channel.opened.set_result(upstream)
                with self._upstream.stream_errors("status_stream"):
                    async for event in EventSource(upstream).aiter_sse():
                        if event.data:
                            status = jsoncodec.loads(event.data)
                            channel.publish(
                                {"data": jsoncodec.dumps(self._job_status.seen(owned, status))}
                            )
        except Exception as exc:  # handed to the watchers waiting for the stream, or logged
            if not channel.opened.done():
                channel.opened.set_exception(exc)
            elif isinstance(exc, UpstreamError):
                logger.warning("status stream of %s broke off upstream", owned.id)
            else:
                logger.exception("status stream of %s failed", owned.id)
        finally:
            channel.publish(_END)
            if self._channels.get(channel_key) is channel:
                del self._channels[channel_key]


def _retrieve(future: asyncio.Future[httpx.Response]) -> None:
    if not future.cancelled():
        future.exception()


async def _no_events() -> AsyncIterator[dict[str, Any]]:
    return
    yield
