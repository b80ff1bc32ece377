"""How fast a backlog of orphaned webhook deliveries drains, against the receiver's own speed.

A receiver answers every POST after ``--latency`` seconds. A first gateway process (the victim)
finishes ``--jobs`` jobs whose webhooks go to that receiver while it hangs, so every delivery is
taken from the queue and left pending; the victim is then killed (SIGKILL). A second gateway
process (the survivor) starts, takes the orphaned deliveries over once they have been idle for
``webhook_claim_idle`` (1 s here) and delivers them. Reported: seconds from the survivor's start
to the last delivery recorded, against the receiver's speed at the survivor's concurrency to
one target (``webhook_target_concurrency`` POSTs at once, sent straight to it).

    .venv/bin/python -m bench.drain [--jobs N] [--latency S]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import redis
from aiohttp import web

from bench.growth import KNOBS, _submit_all
from gateway.store import redis_keys
from tests.servers import Emulator, Gateway, RedisServer, free_port

TEAM = "drain"
QUEUE = redis_keys.delivery_stream(redis_keys.shard_of(TEAM))
RETRIES = redis_keys.delivery_retries(redis_keys.shard_of(TEAM))
"""The team's shard of the delivery queue, where all the benchmark's deliveries go."""
TARGET_CONCURRENCY = 8


class Receiver:
    """An aiohttp server on its own thread: every POST answered 200 after ``latency`` seconds,
    or held until ``release`` while ``hanging``."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.posts = 0
        self.hanging = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._released: asyncio.Event | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.posts += 1
        if self.hanging.is_set():
            assert self._released is not None
            await self._released.wait()
        await asyncio.sleep(self.latency)
        return web.Response(text="ok")

    def release(self) -> None:
        self.hanging.clear()
        assert self._released is not None
        self._loop.call_soon_threadsafe(self._released.set)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        started = threading.Event()

        async def serve() -> None:
            self._released = asyncio.Event()
            app = web.Application()
            app.router.add_post("/{path:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            started.set()
            await asyncio.Event().wait()

        thread = threading.Thread(target=self._loop.run_until_complete, args=(serve(),))
        thread.daemon = True
        thread.start()
        started.wait(10)
        yield self


async def _receiver_speed(url: str, posts: int) -> float:
    """POSTs per second the receiver answers, ``TARGET_CONCURRENCY`` at once."""
    gate = asyncio.Semaphore(TARGET_CONCURRENCY)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one() -> None:
            async with gate:
                (await client.post(url, content=b"{}")).raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(posts)))
        return posts / (time.monotonic() - started)


def run(jobs: int, latency: float) -> dict[str, float]:
    settings = {
        "webhook_target_concurrency": TARGET_CONCURRENCY,
        "webhook_backlog": jobs * 2,  # the victim keeps every delivery it takes pending
        "webhook_timeout": 10,
    }
    with (
        RedisServer() as server,
        Emulator(KNOBS) as emulator,
        Receiver(latency).running() as receiver,
        redis.Redis.from_url(server.url) as client,
    ):
        receiver.hanging.set()
        with Gateway(server.url, emulator.url, settings) as victim:
            token, _ = victim.new_key(team_id=TEAM)
            asyncio.run(_submit_all(victim.url, token, jobs, f"{receiver.url}/hook"))
            deadline = time.monotonic() + 600
            while client.xpending(QUEUE, redis_keys.DELIVERY_GROUP)["pending"] < jobs:
                if time.monotonic() > deadline:
                    raise SystemExit("the victim did not take every delivery")
                time.sleep(0.2)
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
        receiver.release()
        survivor_settings = {**settings, "webhook_claim_idle": 1}
        started = time.monotonic()
        bulk = 0.0
        with Gateway(server.url, emulator.url, survivor_settings):
            deadline = time.monotonic() + 900
            while client.xlen(QUEUE) or client.zcard(RETRIES):
                if time.monotonic() > deadline:
                    raise SystemExit("the backlog did not drain")
                if not bulk and _delivered(client) >= jobs - TARGET_CONCURRENCY:
                    bulk = time.monotonic() - started
                time.sleep(0.2)
            drained = time.monotonic() - started
            delivered = _delivered(client)
        speed = asyncio.run(_receiver_speed(f"{receiver.url}/direct", jobs))
    return {
        "jobs": jobs,
        "delivered": delivered,
        "drain_seconds": drained,
        "bulk_seconds": bulk or drained,
        "receiver_per_second": speed,
    }


def _delivered(client: redis.Redis) -> int:
    count = 0
    for name in client.scan_iter(match=f"fgw:{{{TEAM}}}:delivery:*", count=1000):
        count += client.hget(name, "status") == b"delivered"
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    result = run(args.jobs, args.latency)
    at_receiver_speed = result["jobs"] / result["receiver_per_second"]
    print(
        f"{result['jobs']} orphaned deliveries ({result['delivered']} delivered): all but the "
        f"{TARGET_CONCURRENCY} the victim was sending when killed in "
        f"{result['bulk_seconds']:.1f} s, all in {result['drain_seconds']:.1f} s (survivor start "
        f"to last delivery recorded, claim idle 1 s included; the victim's own attempts wait "
        f"for its locks to lapse, webhook_timeout + 5 s); the receiver "
        f"alone takes {at_receiver_speed:.1f} s for as many at {TARGET_CONCURRENCY} at once "
        f"({result['receiver_per_second']:.0f}/s)."
    )


if __name__ == "__main__":
    main()
