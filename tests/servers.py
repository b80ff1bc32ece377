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
from typing import Self

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``python -m gateway <args>`` with the given settings in its environment."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        ready_url: str,
        *,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._args = args
        self._env = {**os.environ, **env}
        self._ready_url = ready_url
        self._verify = verify
        self._log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *self._args],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
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
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


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
