"""Status streams cannot starve anyone: watchers of a request share one stream from fal, each key
holds a bounded number open, and streams use their own connections to fal."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.jobs import KONTEXT, submit, valid_body
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

WATCHERS = 12


@pytest.fixture(scope="module")
def slow_jobs() -> Iterator[Emulator]:
    """Jobs that run for seconds, so streams stay open while the test looks."""
    with Emulator({"runners": 16, "queue_delay": 0, "run_time": 4.0, "log_interval": 0.5}) as em:
        yield em


class Watcher(threading.Thread):
    """Reads one status stream to its end; ``first`` is set once an event arrived."""

    def __init__(self, client: httpx.Client, status_url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.status_url = client, status_url
        self.first = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.status_code = 0

    def run(self) -> None:
        with connect_sse(self.client, "GET", f"{self.status_url}/stream") as source:
            self.status_code = source.response.status_code
            for event in source.iter_sse():
                if event.data:
                    self.events.append(json.loads(event.data))
                    self.first.set()


def test_watchers_of_one_request_share_one_stream_from_fal(
    redis_server: RedisServer, slow_jobs: Emulator
) -> None:
    with Gateway(redis_server.url, slow_jobs.url) as gateway:
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            submitted = submit(client, KONTEXT, valid_body(KONTEXT))
            upstream = UpstreamLog(slow_jobs)
            watchers = [Watcher(client, submitted["status_url"]) for _ in range(WATCHERS)]
            for watcher in watchers:
                watcher.start()
            for watcher in watchers:
                watcher.join(timeout=30)
    streams = [r for r in upstream.requests() if str(r["path"]).endswith("/status/stream")]
    assert len(streams) == 1
    for watcher in watchers:
        assert watcher.status_code == 200
        assert watcher.events[-1]["status"] == "COMPLETED"


def test_a_key_holds_a_bounded_number_of_streams(
    redis_server: RedisServer, slow_jobs: Emulator
) -> None:
    with Gateway(redis_server.url, slow_jobs.url, {"max_streams_per_key": 2}) as gateway:
        token, _ = gateway.new_key()
        other, _ = gateway.new_key()
        with gateway.client(token) as client, gateway.client(other) as other_client:
            jobs = [submit(client, KONTEXT, valid_body(KONTEXT)) for _ in range(3)]
            held = [Watcher(client, job["status_url"]) for job in jobs[:2]]
            for watcher in held:
                watcher.start()
                assert watcher.first.wait(10)
            refused = client.get(f"{jobs[2]['status_url']}/stream")
            assert refused.status_code == 429
            assert refused.json()["error_type"] == "too_many_streams"
            assert refused.headers["retry-after"] == "1"
            # Another key is not affected, and polling still works.
            other_job = submit(other_client, KONTEXT, valid_body(KONTEXT))
            third = Watcher(other_client, other_job["status_url"])
            third.start()
            assert third.first.wait(10)
            assert client.get(jobs[2]["status_url"]).is_success
            for watcher in [*held, third]:
                watcher.join(timeout=30)
            # Streams that ended give their places back.
            again = Watcher(client, jobs[2]["status_url"])
            again.start()
            again.join(timeout=30)
            assert again.status_code == 200
            assert again.events[-1]["status"] == "COMPLETED"


def test_open_streams_cannot_take_the_connections_submits_need(
    redis_server: RedisServer, slow_jobs: Emulator
) -> None:
    """Two connections for short calls, two for long ones: two keys streaming two jobs take the
    long ones and leave the short calls theirs (before, one pool: the submit waited for a
    connection until it timed out)."""
    settings = {
        "upstream_max_connections": 2,
        "upstream_long_connections": 2,
        "upstream_timeout": 3,
    }
    with Gateway(redis_server.url, slow_jobs.url, settings) as gateway, ExitStack() as stack:
        watchers = []
        for _ in range(2):
            token, _ = gateway.new_key(f"streamer-{os.urandom(2).hex()}")
            client = stack.enter_context(gateway.client(token))
            job = submit(client, KONTEXT, valid_body(KONTEXT))
            watchers.append(Watcher(client, job["status_url"]))
        for watcher in watchers:
            watcher.start()
        assert all(w.first.wait(10) for w in watchers)
        token, _ = gateway.new_key("submitter")
        with gateway.client(token) as client:
            for _ in range(3):
                response = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT))
                assert response.status_code == 200, response.text
                assert client.get(response.json()["status_url"]).is_success
        for watcher in watchers:
            watcher.join(timeout=30)
            assert watcher.events[-1]["status"] == "COMPLETED"
