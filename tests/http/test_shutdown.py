"""SIGTERM under load: the gateway stops within its shutdown timeout, whatever is open."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse

from tests.jobs import KONTEXT, submit, valid_body
from tests.peer import Peer
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

UNFINISHED = "ASGI callable returned without completing response."
"""uvicorn's account of each status stream cut by the shutdown."""


class Stream(threading.Thread):
    """Holds one status stream open until the gateway cuts it."""

    def __init__(self, client: httpx.Client, status_url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.status_url = client, status_url
        self.open = threading.Event()
        self.cut = threading.Event()

    def run(self) -> None:
        try:
            with connect_sse(self.client, "GET", f"{self.status_url}/stream") as source:
                for _ in source.iter_sse():
                    self.open.set()
        except httpx.HTTPError:
            self.cut.set()


@pytest.mark.server_log(UNFINISHED)
def test_shutdown_under_load_finishes_in_seconds(redis_server: RedisServer, peer: Peer) -> None:
    gate = threading.Event()
    path = f"/hooks/shutdown-{os.urandom(4).hex()}"
    peer.gates[path] = gate  # a receiver that hangs: deliveries stay in flight
    fast_then_slow = {"runners": 8, "queue_delay": 0, "run_time": 0.05, "log_interval": 0.5}
    settings = {"shutdown_timeout": 2, "webhook_timeout": 60, "reconcile_interval": 0.2}
    try:
        with (
            Emulator(fast_then_slow) as emulator,
            Gateway(redis_server.url, emulator.url, settings) as gateway,
        ):
            token, _ = gateway.new_key()
            client = gateway.client(token)
            for _ in range(4):  # finished jobs whose deliveries hang at the receiver
                submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=f"{peer.url}{path}")
            peer.wait_for_posts(path, 4)
            with emulator.client() as control:
                control.patch("/_emulator/knobs", json={"run_time": 60}).raise_for_status()
            jobs = [submit(client, KONTEXT, valid_body(KONTEXT)) for _ in range(4)]
            streams = [Stream(client, job["status_url"]) for job in jobs]
            for stream in streams:
                stream.start()
                assert stream.open.wait(10)
            assert gateway.process is not None
            started = time.monotonic()
            gateway.process.send_signal(signal.SIGTERM)
            gateway.process.wait(timeout=30)
            took = time.monotonic() - started
            client.close()
    finally:
        gate.set()
    assert gateway.process.returncode == 0
    assert took < 15, f"shutdown took {took:.1f} s with a 2 s timeout"
    for stream in streams:
        stream.join(5)
        assert stream.cut.is_set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway.url}/healthz")


class Watcher(threading.Thread):
    """Follows one status stream to its end, keeping the statuses it was sent."""

    def __init__(self, client: httpx.Client, status_url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.status_url = client, status_url
        self.open = threading.Event()
        self.statuses: list[str] = []

    def run(self) -> None:
        with connect_sse(self.client, "GET", f"{self.status_url}/stream") as source:
            for event in source.iter_sse():
                self.statuses.append(event.json()["status"])
                self.open.set()


def _in_flight(gateway: Gateway) -> float:
    """Requests the gateway is answering now (``gateway_requests_in_flight``)."""
    found = re.search(
        r"^gateway_requests_in_flight (\S+)$", httpx.get(f"{gateway.url}/metrics").text, re.M
    )
    assert found is not None
    return float(found[1])


def test_sigterm_drains_a_sync_run_and_a_status_stream_before_exiting(
    redis_server: RedisServer,
) -> None:
    """What a rolling update relies on: the requests open when SIGTERM comes are answered in
    full (within ``SHUTDOWN_TIMEOUT``), then the process exits cleanly."""
    runs_a_while = {"queue_delay": 0, "run_time": 2.5, "log_interval": 0.5}
    with (
        Emulator(runs_a_while) as emulator,
        Gateway(redis_server.url, emulator.url, {"shutdown_timeout": 30}) as gateway,
    ):
        token, _ = gateway.new_key()
        client = gateway.client(token)
        job = submit(client, KONTEXT, valid_body(KONTEXT))
        watcher = Watcher(client, job["status_url"])
        watcher.start()
        assert watcher.open.wait(10)
        upstream = UpstreamLog(emulator)
        sync: list[httpx.Response] = []
        runner = threading.Thread(
            target=lambda: sync.append(client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT))),
            daemon=True,
        )
        runner.start()
        deadline = time.monotonic() + 10
        while _in_flight(gateway) < 3:  # the stream, the sync run and this metrics request
            assert time.monotonic() < deadline, "the sync run never started"
            time.sleep(0.05)
        # fal logs a request once answered: the sync run is still running there.
        assert not [r for r in upstream.requests() if str(r["path"]).startswith("/sync/")]
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        gateway.process.wait(timeout=30)
        watcher.join(10)
        runner.join(10)
        client.close()
    assert gateway.process.returncode == 0
    assert watcher.statuses[-1] == "COMPLETED"
    [response] = sync
    assert response.status_code == 200
    assert response.json()["images"]
