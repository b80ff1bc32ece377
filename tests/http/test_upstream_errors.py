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
from tests.upstream.pool_stack import env_name


def _counter(gateway_url: str, operation: str, kind: str) -> float:
    """The errors counted for ``operation`` and ``kind``, over every fal account."""
    text = httpx.get(f"{gateway_url}/metrics").text
    pattern = (
        r'gateway_upstream_errors_total\{account="[^"]*",'
        rf'kind="{kind}",operation="{operation}"\}} ([0-9.e+]+)'
    )
    return sum(float(found) for found in re.findall(pattern, text))


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


def test_refused_upstream_key_disables_its_account_and_is_never_shown(emulator: Emulator) -> None:
    """The only account's key refused: the account is disabled with fal's reason, the caller
    gets a 503 saying no account can take jobs (not fal's 401), and the key shows nowhere. A
    Redis of its own: the pool is shared by every gateway on a Redis."""
    with (
        RedisServer() as redis,
        Gateway(redis.url, emulator.url, {"fal_key": "not-the-right-key"}) as gateway,
    ):
        response = _submit_with_new_key(gateway)
        assert response.status_code == 503
        assert response.json()["error_type"] == "upstream_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["accounts"]["not_usable"] == {env_name("not-the-right-key"): "disabled"}
        assert "gateway_upstream_accounts_usable 0.0" in httpx.get(f"{gateway.url}/metrics").text
        assert "not-the-right-key" not in response.text + ready.text
        assert "not-the-right-key" not in gateway.output()


def test_failed_job_outcome_passes_through(caller: httpx.Client, knobs: SetKnobs) -> None:
    knobs(fail_job_rate=1.0)
    result = run(caller, INPAINTING, valid_body(INPAINTING))
    assert result.status_code == 500
    assert result.json() == {
        "detail": "Internal server error",
        "error_type": "internal_server_error",
    }
