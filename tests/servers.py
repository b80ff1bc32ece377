"""Real servers for tests: gateway commands run as subprocesses on free loopback ports."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import pytest

from tests.server_logs import ServerLog, describe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_live: list[ServerProcess] = []
"""Server processes started and not yet stopped, whose logs each test checks."""


def live_servers() -> list[ServerProcess]:
    return list(_live)


class ServerProcess:
    """``python -m gateway <args>`` with the given settings in its environment.

    Its output goes to a log file that the tests check (see ``tests/server_logs.py``): while it
    runs, at the end of each test; when it stops, here.
    """

    START_TIMEOUT = 20.0

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        ready_url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._args = args
        self._env = {**(os.environ if environ is None else environ), **env}
        self._ready_url = ready_url
        self._verify = verify
        self._log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)  # noqa: SIM115
        self.log = ServerLog(" ".join(["python -m gateway", *args]), Path(self._log.name))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *self._args],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _live.append(self)
        timeout = timeout or self.START_TIMEOUT
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if httpx.get(self._ready_url, verify=self._verify, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server; what it logged since the last check (its shutdown included) counts
        against the current test: it fails, or, if it is failing already, gets a note."""
        try:
            self.stop()
            undeclared = self.log.check(final=True)
        finally:
            if self in _live:
                _live.remove(self)
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
        if undeclared:
            message = describe(self.log.name, undeclared, when="up to its stop")
            if exc is None:
                pytest.fail(message, pytrace=False)
            exc.add_note(message)


class Emulator(ServerProcess):
    """A running ``fal-gateway emulator`` and a client for it."""

    KEY = "emulator-test-key"

    def __init__(
        self,
        settings: Mapping[str, object] | None = None,
        *,
        tls: tuple[Path, Path, str] | None = None,
    ) -> None:
        self.port = free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        env = {f"GATEWAY_EMULATOR_{k.upper()}": str(v) for k, v in (settings or {}).items()}
        env.setdefault("GATEWAY_EMULATOR_KEYS", self.KEY)
        args = ["emulator", "--port", str(self.port)]
        self.verify: ssl.SSLContext | bool = True
        if tls:
            cert, key, ca = tls
            args += ["--tls-cert", str(cert), "--tls-key", str(key)]
            self.verify = ssl.create_default_context(cafile=ca)
        super().__init__(args, env, f"{self.url}/.well-known/jwks.json", verify=self.verify)

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"Authorization": f"Key {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=self.verify)


class RedisServer:
    """A throwaway ``redis-server`` on a free port (the binary ``fal-gateway dev`` would use)."""

    def __init__(self, port: int | None = None, *extra_args: str) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._extra_args = extra_args
        self._dir = tempfile.TemporaryDirectory(prefix="redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        from gateway.cli.devstack import redis_server_binary

        return [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self._dir.name,
            "--save",
            "",
            "--appendonly",
            "no",
            *self._extra_args,
        ]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()


class Gateway(ServerProcess):
    """A running ``fal-gateway serve`` and clients for it."""

    ADMIN_TOKEN = "admin-test-token"

    def __init__(
        self,
        redis_url: str,
        upstream_url: str,
        settings: Mapping[str, object] | None = None,
        *,
        tls: tuple[Path, Path, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """``settings`` are ``GATEWAY_*`` variables without the prefix; ``extra_env`` other
        variables (``OTEL_*``)."""
        self.port = free_port()
        self.redis_url = redis_url
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = True
        args = ["serve", "--port", str(self.port)]
        if tls:
            cert, key, ca = tls
            args += ["--tls-cert", str(cert), "--tls-key", str(key)]
            self.verify = ssl.create_default_context(cafile=ca)
        env = {
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_PUBLIC_URL": self.url,
            "GATEWAY_ADMIN_TOKEN": self.ADMIN_TOKEN,
            "GATEWAY_FAL_KEY": Emulator.KEY,
            "GATEWAY_UPSTREAM_QUEUE_URL": upstream_url,
            "GATEWAY_UPSTREAM_RUN_URL": f"{upstream_url}/sync",
            "GATEWAY_UPSTREAM_REST_URL": upstream_url,
            "GATEWAY_FAL_JWKS_URL": f"{upstream_url}/.well-known/jwks.json",
            # Test receivers listen on loopback over plain http; retries are quick.
            "GATEWAY_WEBHOOK_ALLOW_HTTP": "true",
            "GATEWAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "GATEWAY_WEBHOOK_RETRY_SCHEDULE": "0.3,0.6,1.2,2.4",
            "GATEWAY_WEBHOOK_CLAIM_IDLE": "1.5",
            "GATEWAY_WEBHOOK_TIMEOUT": "1",
            **{f"GATEWAY_{k.upper()}": str(v) for k, v in (settings or {}).items()},
            **(extra_env or {}),
        }
        super().__init__(args, env, f"{self.url}/healthz", verify=self.verify)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.ADMIN_TOKEN}"},
            timeout=30,
            verify=self.verify,
        )

    FUNDS = 10**12
    """Credit given to teams made by ``ensure_team``: a million dollars of micro-units."""

    def ensure_team(self, team_id: str = "default", funds: int = FUNDS, **limits: object) -> None:
        """Create ``team_id`` with ``funds`` of credit, unless it exists."""
        with self.admin() as admin:
            created = admin.post("/admin/v1/teams", json={"id": team_id, "name": team_id, **limits})
            if created.status_code not in (201, 409):
                raise AssertionError(created.text)
            if created.status_code == 201 and funds:
                credit = {"amount_micros": funds, "note": "test funds"}
                admin.post(f"/admin/v1/teams/{team_id}/credits", json=credit).raise_for_status()

    def new_key(self, name: str = "test", **fields: object) -> tuple[str, dict[str, object]]:
        """Create a key (in a funded team) through the admin API; its secret token and record."""
        self.ensure_team(str(fields.get("team_id", "default")))
        with self.admin() as admin:
            response = admin.post("/admin/v1/keys", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, object] = response.json()
        return str(created["secret"]), created

    def wait_delivery(self, key_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        """The key's only webhook delivery, once the admin API reports it ``status`` (a
        receiver has a POST a moment before the worker records the outcome)."""
        deadline = time.monotonic() + timeout
        with self.admin() as admin:
            while True:
                [record] = admin.get("/admin/v1/deliveries", params={"key_id": key_id}).json()[
                    "deliveries"
                ]
                if record["status"] == status:
                    return dict(record)
                assert time.monotonic() < deadline, record
                time.sleep(0.1)

    def cli(
        self, *args: str, token: str = ADMIN_TOKEN, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python -m gateway <args>`` as an operator would run it against this gateway."""
        env = {**os.environ, "GATEWAY_ADMIN_TOKEN": token, "GATEWAY_PUBLIC_URL": self.url}
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def client(self, token: str | None, scheme: str = "Bearer") -> httpx.Client:
        headers = {"Authorization": f"{scheme} {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=self.verify)


class UpstreamLog:
    """What reached the emulator since this object was made (its ``/_emulator/requests`` log)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        with emulator.client() as client:
            self._mark = client.get("/_emulator/requests").json()["next"]

    def requests(self) -> list[dict[str, object]]:
        with self._emulator.client() as client:
            found: list[dict[str, object]] = client.get(
                "/_emulator/requests", params={"since": self._mark}
            ).json()["requests"]
        return found

    def submits(self) -> list[dict[str, object]]:
        return [
            r
            for r in self.requests()
            if r["method"] == "POST" and not str(r["path"]).startswith("/storage")
        ]
