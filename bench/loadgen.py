"""An open-loop load generator: requests start on a fixed schedule, whatever the server does.

Latency is measured from each request's scheduled start, so a server that stalls is charged for
the requests that queued behind the stall (no coordinated omission). The generator reports its
own lag (how late requests actually started) and the CPU it used, which shows whether it, rather
than the server, limited a run.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Run:
    """What a fixed-rate run measured."""

    sent: int
    failed: int
    latencies: list[float]
    """Seconds from each request's scheduled start to its complete answer, sorted."""
    lags: list[float]
    """Seconds each request started behind its schedule, sorted."""
    seconds: float
    cpu_seconds: float
    """CPU the generator's process used during the run."""

    def latency(self, percentile: float) -> float:
        return _percentile(self.latencies, percentile)

    def lag(self, percentile: float) -> float:
        return _percentile(self.lags, percentile)


def _percentile(sorted_values: list[float], percentile: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(percentile / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fixed_rate(
    url: str,
    *,
    rate: float,
    seconds: float,
    headers: dict[str, str],
    body: bytes | None = None,
    connections: int = 64,
) -> Run:
    """Send ``rate`` requests per second to ``url`` for ``seconds`` (POST when there is a body)."""
    method = "POST" if body is not None else "GET"
    total = int(rate * seconds)
    latencies: list[float] = []
    lags: list[float] = []
    failed = 0

    async def one(session: aiohttp.ClientSession, scheduled: float) -> None:
        nonlocal failed
        lags.append(time.perf_counter() - scheduled)
        try:
            async with session.request(method, url, data=body, headers=headers) as response:
                await response.read()
                ok = response.status < 300
        except aiohttp.ClientError:
            ok = False
        if ok:
            latencies.append(time.perf_counter() - scheduled)
        else:
            failed += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm the connection pool so the run measures requests, not TCP handshakes.
        await asyncio.gather(*(one(session, time.perf_counter()) for _ in range(8)))
        latencies.clear()
        lags.clear()
        failed = 0
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        tasks = []
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before
    return Run(total, failed, sorted(latencies), sorted(lags), elapsed, cpu)
