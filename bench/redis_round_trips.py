"""Count the Redis round trips the gateway makes per submit and per status poll.

A loopback TCP proxy sits between the gateway and Redis and counts round trips: a burst of bytes
from the gateway followed by Redis's reply is one, however redis-py splits its writes and however
many commands a pipeline carries. Everything runs on this machine: redis-server, the emulator and
one gateway process, started as in the tests.

    .venv/bin/python -m bench.redis_round_trips [--submits N]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from dataclasses import dataclass, field

from tests.jobs import KONTEXT, valid_body
from tests.servers import Emulator, Gateway, RedisServer, free_port


@dataclass
class RoundTrips:
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self) -> None:
        with self.lock:
            self.count += 1


class CountingProxy:
    """Forwards loopback TCP to Redis, counting request/reply round trips."""

    def __init__(self, redis_port: int) -> None:
        self.port = free_port()
        self.redis_port = redis_port
        self.trips = RoundTrips()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_until_complete(server.serve_forever())

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        awaiting_reply = False

        async def upstream() -> None:
            nonlocal awaiting_reply
            while data := await client_r.read(65536):
                if not awaiting_reply:
                    self.trips.add()
                    awaiting_reply = True
                redis_w.write(data)
                await redis_w.drain()
            redis_w.close()

        async def downstream() -> None:
            nonlocal awaiting_reply
            while data := await redis_r.read(65536):
                awaiting_reply = False
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


def measure(submits: int) -> dict[str, float]:
    with RedisServer() as redis, Emulator({"queue_delay": 60}) as emulator:
        proxy = CountingProxy(redis.port)
        with Gateway(f"redis://127.0.0.1:{proxy.port}/0", emulator.url) as gateway:
            token, _ = gateway.new_key()
            with gateway.client(token) as client:
                body = valid_body(KONTEXT)
                first = client.post(f"/{KONTEXT}", json=body)  # warms the key's policy cache
                status_url = first.json()["status_url"]
                before = proxy.trips.count
                for _ in range(submits):
                    assert client.post(f"/{KONTEXT}", json=body).status_code == 200
                per_submit = (proxy.trips.count - before) / submits
                before = proxy.trips.count
                for _ in range(submits):
                    assert client.get(status_url).status_code == 202
                per_poll = (proxy.trips.count - before) / submits
    return {"submit": per_submit, "status_poll": per_poll}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=200)
    args = parser.parse_args()
    result = measure(args.submits)
    print(f"Redis round trips per submit (policy cached): {result['submit']:.2f}")
    print(f"Redis round trips per status poll:            {result['status_poll']:.2f}")


if __name__ == "__main__":
    main()
