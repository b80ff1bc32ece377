"""The programs the benchmark drives besides the gateway: wrk (load) and nginx (a plain proxy)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import httpx

from tests.servers import free_port

HERE = Path(__file__).parent


def program(name: str) -> str:
    """The path of ``name`` (``make bench`` installs wrk and nginx when they are missing)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise SystemExit(f"{name} is not installed (make bench installs it with apt-get)")
    return found


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    authorization: str,
    body_file: Path | None = None,
    targets_file: Path | None = None,
) -> dict[str, Any]:
    """Saturate ``url`` with one wrk thread for ``seconds``: the figures of its ``done()``, and
    the share of a core wrk itself used (well under 100 %: wrk was not the limit). With
    ``targets_file`` (lines ``<authorization> <path>``), requests take its lines in turn."""
    env = {**os.environ, "WRK_AUTHORIZATION": authorization}
    if body_file is not None:
        env |= {"WRK_METHOD": "POST", "WRK_BODY_FILE": str(body_file)}
    if targets_file is not None:
        env["WRK_TARGETS_FILE"] = str(targets_file)
    command = [
        program("wrk"),
        "--threads=1",
        f"--connections={connections}",
        f"--duration={seconds:g}s",
        f"--script={HERE / 'wrk' / 'load.lua'}",
        url,
    ]
    cpu_before = _children_cpu_seconds()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    elapsed = figures["duration_us"] / 1e6
    figures["rps"] = figures["requests"] / elapsed
    figures["wrk_cpu"] = (_children_cpu_seconds() - cpu_before) / elapsed
    return figures


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Nginx:
    """nginx proxying everything to ``upstream_port`` on loopback, keep-alive both ways."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._upstream_port = upstream_port
        self._dir = tempfile.TemporaryDirectory(prefix="bench-nginx-")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        prefix = self._dir.name
        config = Path(prefix) / "nginx.conf"
        template = (HERE / "nginx.conf").read_text()
        config.write_text(
            template.format(prefix=prefix, port=self.port, upstream_port=self._upstream_port)
        )
        self._process = subprocess.Popen(
            [program("nginx"), "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/.well-known/jwks.json", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("nginx did not start")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._dir.cleanup()
