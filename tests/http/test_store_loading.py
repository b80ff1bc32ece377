"""Redis still loading its data after a restart is the store being unavailable: 503 with
Retry-After in fal's shape, never a 500, and the gateway carries on once it has loaded."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.cli.devstack import redis_server_binary
from tests.jobs import KONTEXT, valid_body
from tests.servers import Emulator, Gateway, free_port

UNAVAILABLE = "gateway_unavailable"


def _reply(port: int, command: bytes = b"PING") -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(command + b"\r\n")
            return sock.recv(64)
    except OSError:
        return b""


def _wait_for_reply(port: int, prefix: bytes, command: bytes = b"PING") -> None:
    deadline = time.monotonic() + 30
    while not _reply(port, command).startswith(prefix):
        if time.monotonic() > deadline:
            raise AssertionError(f"redis never answered {prefix!r}")
        time.sleep(0.02)


class SlowLoadingRedis:
    """A ``redis-server`` whose restarts load a 40 MB dump slowly (``key-load-delay``), so that
    for a few seconds after one it answers every command with ``-LOADING``."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._folder)),
                *("--save", "", "--appendonly", "no", "--rdbcompression", "no", *extra),
            ],
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def restart_loading(self) -> None:
        """Save the data with 40 MB of filler, restart, and return once it answers LOADING."""
        with redis.Redis(port=self.port) as client:
            client.execute_command("DEBUG", "POPULATE", 20_000, "filler", 2_000)
            client.save()
        self.stop()
        # Loading pauses 300 µs per key: about 6 s in all, answering clients every 2 MB read.
        self.start("--key-load-delay", "300")
        _wait_for_reply(self.port, b"-LOADING")


@pytest.fixture
def slow_redis(tmp_path: Path) -> Iterator[SlowLoadingRedis]:
    server = SlowLoadingRedis(tmp_path)
    server.start()
    _wait_for_reply(server.port, b"+PONG")
    try:
        yield server
    finally:
        server.stop()


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error_type"] == UNAVAILABLE
    assert response.headers["x-fal-error-type"] == UNAVAILABLE
    assert int(response.headers["retry-after"]) >= 1


def test_redis_loading_after_a_restart_is_a_503_with_retry_after(
    slow_redis: SlowLoadingRedis, emulator: Emulator
) -> None:
    with Gateway(slow_redis.url, emulator.url) as gateway:
        token, _ = gateway.new_key()
        status_url = f"/{KONTEXT}/requests/no-such-request/status"
        slow_redis.restart_loading()
        with gateway.client(token) as client, gateway.admin() as admin:
            _unavailable(client.get(status_url))  # the multiplexed connection
            _unavailable(client.get(status_url, params={"logs": "1"}))
            _unavailable(client.post(f"/{KONTEXT}", json=valid_body(KONTEXT)))  # a Lua script
            _unavailable(client.get("/v1/me"))  # the connection pool
            _unavailable(admin.get("/admin/v1/keys"))
            assert _reply(slow_redis.port).startswith(b"-LOADING")  # all the while
            _wait_for_reply(slow_redis.port, b"+PONG")
            assert client.get(status_url).status_code == 404
            assert client.get("/v1/me").status_code == 200


def test_a_replica_cut_off_from_its_master_is_a_503(emulator: Emulator) -> None:
    """A replica that must not serve stale data answers ``-MASTERDOWN`` while it has no master
    (as during a failover)."""
    port = free_port()
    replica = subprocess.Popen(
        [
            redis_server_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--replicaof", "127.0.0.1", str(free_port()), "--replica-serve-stale-data", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_reply(port, b"-MASTERDOWN", b"GET x")
        with Gateway(f"redis://127.0.0.1:{port}/0", emulator.url) as gateway:
            token = "fgw_default_abcdefghijkl_0123456789abcdefghijklmnopqrstuv"
            with gateway.client(token) as client, gateway.admin() as admin:
                _unavailable(client.get(f"/{KONTEXT}/requests/r1/status"))
                _unavailable(client.get("/v1/me"))
                _unavailable(admin.get("/admin/v1/keys"))
    finally:
        replica.terminate()
        replica.wait(timeout=30)
