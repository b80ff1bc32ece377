"""``fal-gateway dev`` (what ``make serve`` runs): everything starts, the printed curl command
completes a job, Ctrl-C stops every process, and a restart keeps the same demo key."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.images import decode
from tests.servers import Emulator, ServerProcess, free_port


class DevProcess(ServerProcess):
    """``fal-gateway dev`` on the given ports, without the environment's GATEWAY_* settings."""

    START_TIMEOUT = 60.0

    def __init__(
        self, data_dir: Path, ports: tuple[int, int, int], settings: dict[str, str] | None = None
    ) -> None:
        gateway, emulator, redis = ports
        self.port = gateway
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        args = ["dev", "--port", str(gateway), "--emulator-port", str(emulator)]
        args += ["--redis-port", str(redis), "--data-dir", str(data_dir)]
        ready = f"http://127.0.0.1:{gateway}/healthz"
        super().__init__(args, settings or {}, ready, environ=environ)

    def banner(self, timeout: float = 10) -> str:
        """Everything printed until the gateway itself is listening."""
        ready = f"Uvicorn running on http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while ready not in (output := self.output()):
            if time.monotonic() > deadline:
                raise AssertionError("dev did not come up:\n" + output)
            time.sleep(0.05)
        return output[: output.index("\n", output.index(ready)) + 1]

    def interrupt(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


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
    with DevProcess(tmp_path, ports) as dev:
        banner = dev.banner()
        assert (tmp_path / "admin-token").read_text().strip() not in banner
        token, _ = _complete_printed_job(banner, ports[0])
        assert dev.interrupt() == 0
    assert all(_closed(port) for port in ports)
    assert (tmp_path / "admin-token").stat().st_mode & 0o777 == 0o600

    with DevProcess(tmp_path, ports) as again:
        assert f"Demo key:    {token}" in again.banner()
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
    with DevProcess(tmp_path, ports, settings) as dev:
        banner = dev.banner()
        assert "GATEWAY_FAL_KEY is set" in banner
        assert f"-d @{tmp_path / 'demo' / 'inpainting.json'}" in banner
        body = json.loads((tmp_path / "demo" / "inpainting.json").read_text())
        assert body["image_url"].startswith("data:image/png;base64,")
        _complete_printed_job(banner, ports[0])
        assert _closed(ports[1])  # no emulator of its own
        assert dev.interrupt() == 0


def test_dev_relays_webhooks_to_a_local_receiver(tmp_path: Path) -> None:
    from tests.peer import Peer

    ports = (free_port(), free_port(), free_port())
    with DevProcess(tmp_path, ports) as dev:
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
        assert dev.interrupt() == 0
