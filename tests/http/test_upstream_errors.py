"""Upstream failures become fal-shaped errors with sensible codes, and are counted."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, run, valid_body
from tests.peer import SilentServer
from tests.servers import Emulator, Gateway, RedisServer, free_port


def _counter(gateway_url: str, operation: str, kind: str) -> float:
    text = httpx.get(f"{gateway_url}/metrics").text
    pattern = (
        rf'gateway_upstream_errors_total\{{kind="{kind}",operation="{operation}"\}} ([0-9.e+]+)'
    )
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def _submit_with_new_key(gateway: Gateway) -> httpx.Response:
    token, _ = gateway.new_key()
    with gateway.client(token) as client:
        return client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))


@pytest.fixture(scope="module")
def refused_gateway(redis_server: RedisServer) -> Iterator[Gateway]:
    with Gateway(redis_server.url, f"http://127.0.0.1:{free_port()}") as gateway:
        yield gateway


def test_connection_refused_is_502(refused_gateway: Gateway, emulator: Emulator) -> None:
    response = _submit_with_new_key(refused_gateway)
    assert response.status_code == 502
    assert response.json() == {
        "detail": "fal could not be reached",
        "error_type": "upstream_unavailable",
    }
    assert _counter(refused_gateway.url, "submit", "unavailable") >= 1


def test_timeout_is_504(redis_server: RedisServer) -> None:
    with (
        SilentServer() as silent,
        Gateway(redis_server.url, silent.url, {"upstream_timeout": 0.5}) as gateway,
    ):
        response = _submit_with_new_key(gateway)
        assert response.status_code == 504
        assert response.json() == {
            "detail": "fal did not answer in time",
            "error_type": "upstream_timeout",
        }
        assert _counter(gateway.url, "submit", "timeout") == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_is_502(gateway: Gateway, knobs: SetKnobs, status: int) -> None:
    knobs(fail_submit_rate=1.0, fail_submit_status=status)
    before = _counter(gateway.url, "submit", "server_error")
    response = _submit_with_new_key(gateway)
    assert response.status_code == 502
    assert response.json() == {"detail": f"fal answered {status}", "error_type": "upstream_error"}
    assert _counter(gateway.url, "submit", "server_error") == before + 1


def test_refused_upstream_key_is_502_and_never_shown(
    redis_server: RedisServer, emulator: Emulator
) -> None:
    with Gateway(redis_server.url, emulator.url, {"fal_key": "not-the-right-key"}) as gateway:
        response = _submit_with_new_key(gateway)
        assert response.status_code == 502
        assert response.json()["error_type"] == "upstream_auth"
        assert "not-the-right-key" not in response.text
        assert "not-the-right-key" not in gateway.output()


def test_failed_job_outcome_passes_through(caller: httpx.Client, knobs: SetKnobs) -> None:
    knobs(fail_job_rate=1.0)
    result = run(caller, INPAINTING, valid_body(INPAINTING))
    assert result.status_code == 500
    assert result.json() == {
        "detail": "Internal server error",
        "error_type": "internal_server_error",
    }
