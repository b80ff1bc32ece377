"""fal's official Python client (``fal-client``), unmodified, against the gateway over HTTPS:
``subscribe``, ``submit`` + ``status`` + ``result``, ``run`` and ``cancel``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, KONTEXT, valid_body
from tests.servers import Emulator, Gateway, RedisServer

pytestmark = pytest.mark.on_cluster

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import fal_client

    inputs = json.loads(sys.stdin.read())
    mode = sys.argv[1]
    out = {}
    if mode == "flows":
        updates = []
        out["subscribe"] = fal_client.subscribe(
            "fal-ai/flux-lora/inpainting", arguments=inputs["inpainting"], with_logs=True,
            on_queue_update=lambda u: updates.append(type(u).__name__),
        )
        out["updates"] = updates
        handle = fal_client.submit("fal-ai/flux-kontext-lora", arguments=inputs["kontext"])
        out["first_status"] = type(handle.status(with_logs=True)).__name__
        out["result"] = handle.get()
        out["module_status"] = type(
            fal_client.status("fal-ai/flux-kontext-lora", handle.request_id)
        ).__name__
        out["module_result"] = fal_client.result("fal-ai/flux-kontext-lora", handle.request_id)
        out["run"] = fal_client.run("fal-ai/flux-kontext-lora", arguments=inputs["kontext"])
    else:
        handle = fal_client.submit("fal-ai/flux-kontext-lora", arguments=inputs["kontext"])
        handle.cancel()
        status = handle.status()
        out["after_cancel"] = type(status).__name__
        out["error_type"] = getattr(status, "error_type", None)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def tls_gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, emulator: Emulator
) -> Iterator[tuple[Gateway, Path]]:
    folder = tmp_path_factory.mktemp("gateway-tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    with Gateway(redis_server.url, emulator.url, tls=(cert, key, str(ca_file))) as gateway:
        yield gateway, ca_file


def _run_client(gateway: Gateway, ca_file: Path, token: str, mode: str) -> dict[str, Any]:
    host = f"127.0.0.1:{gateway.port}"
    env = {
        **os.environ,
        "FAL_KEY": token,
        "FAL_QUEUE_RUN_HOST": host,
        "FAL_RUN_HOST": f"{host}/sync",
        "SSL_CERT_FILE": str(ca_file),
    }
    inputs = {"inpainting": valid_body(INPAINTING), "kontext": valid_body(KONTEXT, seed=5)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        input=json.dumps(inputs),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_subscribe_submit_status_result_and_run(tls_gateway: tuple[Gateway, Path]) -> None:
    gateway, ca_file = tls_gateway
    token, _ = gateway.new_key()
    out = _run_client(gateway, ca_file, token, "flows")
    assert out["subscribe"]["images"][0]["url"].startswith(f"{gateway.url}/files/")
    assert out["updates"][-1] == "Completed"
    assert out["first_status"] in ("Queued", "InProgress", "Completed")
    assert out["result"]["seed"] == 5
    assert out["module_status"] == "Completed"
    assert out["module_result"] == out["result"]
    assert out["run"]["seed"] == 5
    assert out["run"]["images"][0]["url"].startswith(f"{gateway.url}/files/")


def test_cancel(tls_gateway: tuple[Gateway, Path], knobs: SetKnobs) -> None:
    gateway, ca_file = tls_gateway
    token, _ = gateway.new_key()
    knobs(queue_delay=10)
    out = _run_client(gateway, ca_file, token, "cancel")
    assert out == {"after_cancel": "Completed", "error_type": "request_cancelled"}
