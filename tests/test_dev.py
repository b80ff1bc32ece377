"""``fal-gateway dev`` (what ``make serve`` runs): everything starts, the printed curl command
completes a job, Ctrl-C stops every process, and a restart keeps the same demo key."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.images import decode
from tests.servers import Emulator, free_port


class DevProcess:
    def __init__(
        self, data_dir: Path, ports: tuple[int, int, int], settings: dict[str, str] | None = None
    ) -> None:
        gateway, emulator, redis = ports
        self.port = gateway
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(settings or {})
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "dev",
                "--port",
                str(gateway),
                "--emulator-port",
                str(emulator),
                "--redis-port",
                str(redis),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                self.lines.put(line)
        except ValueError:
            pass  # closed by interrupt()

    def banner(self, timeout: float = 60) -> str:
        """Everything printed until the gateway itself is listening."""
        ready = f"Uvicorn running on http://127.0.0.1:{self.port}"
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(self.lines.get(timeout=0.5))
            except queue.Empty:
                continue
            if ready in seen[-1]:
                return "".join(seen)
        raise AssertionError("dev did not come up:\n" + "".join(seen))

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def _closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def _complete_printed_job(banner: str, gateway_port: int) -> tuple[str, dict[str, Any]]:
    """Run the printed curl command as a user would; the demo key and the finished result."""
    token = re.search(r"Demo key:\s+(\S+)", banner)
    assert token is not None
    curl = next(line for line in banner.splitlines() if line.startswith("curl -s -X POST"))
    submitted = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
    )
    request = json.loads(submitted.stdout)
    assert request["status_url"].startswith(f"http://127.0.0.1:{gateway_port}/")
    headers = {"Authorization": f"Bearer {token.group(1)}"}
    deadline = time.monotonic() + 30
    while httpx.get(request["status_url"], headers=headers).json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result: dict[str, Any] = httpx.get(request["response_url"], headers=headers).json()
    image = httpx.get(result["images"][0]["url"])
    assert image.status_code == 200
    assert decode(image.content).size == (512, 384)
    return token.group(1), result


def test_dev_stack_end_to_end(tmp_path: Path) -> None:
    ports = (free_port(), free_port(), free_port())
    dev = DevProcess(tmp_path, ports)
    try:
        banner = dev.banner()
        assert (tmp_path / "admin-token").read_text().strip() not in banner
        token, _ = _complete_printed_job(banner, ports[0])
    finally:
        code = dev.interrupt()
    assert code == 0
    assert all(_closed(port) for port in ports)
    assert (tmp_path / "admin-token").stat().st_mode & 0o777 == 0o600

    again = DevProcess(tmp_path, ports)
    try:
        assert f"Demo key:    {token}" in again.banner()
    finally:
        assert again.interrupt() == 0


def test_dev_with_a_fal_key_uses_the_configured_upstream_and_inline_images(
    tmp_path: Path, emulator: Emulator
) -> None:
    ports = (free_port(), free_port(), free_port())
    settings = {
        "GATEWAY_FAL_KEY": Emulator.KEY,
        "GATEWAY_UPSTREAM_QUEUE_URL": emulator.url,
        "GATEWAY_UPSTREAM_RUN_URL": f"{emulator.url}/sync",
        "GATEWAY_UPSTREAM_REST_URL": emulator.url,
    }
    dev = DevProcess(tmp_path, ports, settings)
    try:
        banner = dev.banner()
        assert "GATEWAY_FAL_KEY is set" in banner
        assert f"-d @{tmp_path / 'demo' / 'inpainting.json'}" in banner
        body = json.loads((tmp_path / "demo" / "inpainting.json").read_text())
        assert body["image_url"].startswith("data:image/png;base64,")
        _complete_printed_job(banner, ports[0])
        assert _closed(ports[1])  # no emulator of its own
    finally:
        assert dev.interrupt() == 0


def test_dev_relays_webhooks_to_a_local_receiver(tmp_path: Path) -> None:
    from tests.peer import Peer

    ports = (free_port(), free_port(), free_port())
    dev = DevProcess(tmp_path, ports)
    try:
        banner = dev.banner()
        token = re.search(r"Demo key:\s+(\S+)", banner)
        assert token is not None
        with Peer() as peer:
            response = httpx.post(
                f"http://127.0.0.1:{ports[0]}/fal-ai/flux-kontext-lora",
                params={"fal_webhook": f"{peer.url}/hook"},
                json={
                    "prompt": "x",
                    "image_url": f"http://127.0.0.1:{ports[1]}/files/demo/photo.png",
                },
                headers={"Authorization": f"Bearer {token.group(1)}"},
            )
            assert response.status_code == 200, response.text
            [delivery] = peer.wait_for_posts("/hook", 1, timeout=30)
            assert json.loads(delivery.body)["status"] == "OK"
    finally:
        assert dev.interrupt() == 0
