"""fal's official Python client (``fal-client`` from PyPI) against the emulator over HTTPS.

The client hard-codes ``https://`` and reads its hosts at import time, so it runs in a child
process with ``FAL_QUEUE_RUN_HOST``/``FAL_RUN_HOST`` pointing at the emulator and
``SSL_CERT_FILE`` trusting the test CA that signed the emulator's certificate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.images import data_uri, mask_left_half, png
from tests.servers import Emulator

CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import fal_client

    arguments = json.loads(sys.stdin.read())
    updates = []
    result = fal_client.subscribe(
        "fal-ai/flux-lora/inpainting",
        arguments=arguments,
        with_logs=True,
        on_queue_update=lambda update: updates.append(type(update).__name__),
    )
    handle = fal_client.submit("fal-ai/flux-kontext-lora", arguments=arguments)
    submitted_result = handle.get()
    ran = fal_client.run("fal-ai/flux-kontext-lora", arguments=arguments)
    print(json.dumps({
        "result": result,
        "updates": updates,
        "submitted_result": submitted_result,
        "run": ran,
        "status": type(handle.status()).__name__,
    }))
    """
)


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    settings = {"queue_delay": 0.05, "run_time": 0.3, "log_interval": 0.1}
    with Emulator(settings, tls=(cert, key, str(ca_file))) as emulator:
        yield emulator, ca_file


def test_fal_client_subscribe_submit_and_run(tls_emulator: tuple[Emulator, Path]) -> None:
    emulator, ca_file = tls_emulator
    host = f"127.0.0.1:{emulator.port}"
    env = {
        **os.environ,
        "FAL_KEY": Emulator.KEY,
        "FAL_QUEUE_RUN_HOST": host,
        "FAL_RUN_HOST": f"{host}/sync",
        "SSL_CERT_FILE": str(ca_file),
    }
    arguments = {
        "prompt": "a lighthouse at dusk",
        "image_url": data_uri(png(48, 32)),
        "mask_url": data_uri(mask_left_half(48, 32)),
        "seed": 3,
    }

    completed = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT],
        input=json.dumps(arguments),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    output = json.loads(completed.stdout)
    assert output["result"]["images"][0]["width"] == 48
    assert output["result"]["seed"] == 3
    assert output["result"]["images"][0]["url"].startswith(f"https://{host}/files/")
    assert "InProgress" in output["updates"]
    assert output["updates"][-1] == "Completed"
    assert output["submitted_result"]["prompt"] == "a lighthouse at dusk"
    assert output["run"]["images"][0]["height"] == 32
    assert output["status"] == "Completed"
