"""Liveness, readiness, metrics; and failing closed when Redis is down."""

from __future__ import annotations

import re

import httpx

from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator, Gateway, RedisServer, free_port


def test_healthz_and_readyz(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "redis": "ok",
        "upstream": "ok",
        "accounts": {"usable": 1, "not_usable": {}},
        "loops": "ok",
    }


def test_metrics_count_routes_without_secrets_or_ids(
    gateway: Gateway, caller: httpx.Client
) -> None:
    submitted = submit(caller, KONTEXT, valid_body(KONTEXT))
    wait_status(caller, submitted["status_url"])
    caller.get(submitted["response_url"])

    text = httpx.get(f"{gateway.url}/metrics").text

    assert re.search(
        r'gateway_requests_total\{method="POST",route="submit",status="200"\} [1-9]', text
    )
    assert re.search(r'gateway_requests_total\{method="GET",route="status",status="20[02]"\}', text)
    assert 'gateway_upstream_duration_seconds_bucket{le="0.005",operation="submit"}' in text
    assert "gateway_requests_in_flight" in text
    assert submitted["request_id"] not in text
    assert "fgw_" not in text
    assert Emulator.KEY not in text


def test_redis_down_fails_closed_and_recovers(emulator: Emulator) -> None:
    with RedisServer() as redis, Gateway(redis.url, emulator.url) as gateway:
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            redis.stop()
            refused = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
            assert refused.status_code == 503
            assert refused.json()["error_type"] == "gateway_unavailable"
            ready = httpx.get(f"{gateway.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["redis"] == "down"
            metrics = httpx.get(f"{gateway.url}/metrics").text
            assert 'gateway_redis_errors_total{source="request"} 1.0' in metrics

            # Same port, fresh data: the key is gone, but the gateway reconnects by itself.
            redis.start()
            assert client.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 401
            assert httpx.get(f"{gateway.url}/readyz").status_code == 200


def test_readyz_reports_an_unreachable_upstream(redis_server: RedisServer) -> None:
    with Gateway(redis_server.url, f"http://127.0.0.1:{free_port()}") as gateway:
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "redis": "ok",
            "upstream": "down",
            "accounts": {"usable": 1, "not_usable": {}},
            "loops": "ok",
        }


def test_several_workers_serve_and_metrics_aggregate_through_the_multiprocess_dir(
    redis_server: RedisServer, emulator: Emulator
) -> None:
    with Gateway(redis_server.url, emulator.url, {"workers": 2}) as gateway:
        token, _ = gateway.new_key()
        with gateway.client(token) as client:
            for _ in range(20):
                # A new connection each time, so both workers take some.
                response = httpx.get(
                    f"{gateway.url}/fal-ai/flux-lora/requests/none/status",
                    headers=client.headers,
                )
                assert response.status_code == 404
        text = httpx.get(f"{gateway.url}/metrics").text
        match = re.search(
            r'gateway_requests_total\{method="GET",route="status",status="404"\} (\S+)', text
        )
        assert match is not None
        assert float(match.group(1)) == 20
