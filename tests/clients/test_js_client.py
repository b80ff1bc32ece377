"""fal's official JS client (``@fal-ai/client`` from npm), unmodified, with ``proxyUrl`` pointed at
the gateway: ``subscribe`` on each endpoint in polling and streaming modes, and a
``storage.upload`` whose URL is then used as input."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.images import png
from tests.jobs import ALL_ENDPOINTS, valid_body
from tests.servers import Gateway

pytestmark = pytest.mark.on_cluster

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def test_fal_js_client_through_the_proxy(gateway: Gateway) -> None:
    node = shutil.which("node")
    assert node is not None, "make test installs Node.js and tests/js"
    assert (JS_DIR / "node_modules" / "@fal-ai" / "client").exists(), "run make test (npm ci)"
    token, _ = gateway.new_key()
    env = {
        **os.environ,
        "GATEWAY_URL": gateway.url,
        "FAL_KEY": token,
        "INPUTS": json.dumps({endpoint: valid_body(endpoint) for endpoint in ALL_ENDPOINTS}),
        "PNG_BASE64": base64.b64encode(png(48, 32)).decode(),
    }
    done = subprocess.run(
        [node, str(JS_DIR / "clients.mjs")],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for endpoint in ALL_ENDPOINTS:
        for mode in ("polling", "streaming"):
            run = results[f"{endpoint}|{mode}"]
            assert run["requestId"]
            assert (run["image"]["width"], run["image"]["height"]) == (64, 48)
            assert run["image"]["url"].startswith(f"{gateway.url}/files/")
            assert run["updates"][-1] == "COMPLETED"
    upload = results["upload"]
    assert upload["url"].startswith(f"{gateway.url}/files/")
    assert (upload["image"]["width"], upload["image"]["height"]) == (48, 32)
