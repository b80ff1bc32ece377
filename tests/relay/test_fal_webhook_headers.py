"""fal's webhook ingress refuses malformed signature headers with a 401, never a 500."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.servers import Gateway

BODY = b'{"request_id": "r1", "status": "OK", "payload": {}}'


def _headers(**changes: str) -> dict[str, str]:
    headers = {
        "X-Fal-Webhook-Request-Id": "r1",
        "X-Fal-Webhook-User-Id": "u1",
        "X-Fal-Webhook-Timestamp": str(int(time.time())),
        "X-Fal-Webhook-Signature": "ab" * 64,
    }
    return {**headers, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"X-Fal-Webhook-Timestamp": "9" * 400},
        {"X-Fal-Webhook-Timestamp": "1" * 5000},
        {"X-Fal-Webhook-Timestamp": "1e9"},
        {"X-Fal-Webhook-Timestamp": "-5"},
        {"X-Fal-Webhook-Timestamp": "1_700_000_000"},
        {"X-Fal-Webhook-Timestamp": "+1700000000"},
        {"X-Fal-Webhook-Timestamp": "1700000000.5"},
        {"X-Fal-Webhook-Timestamp": ""},
        {"X-Fal-Webhook-Signature": "abc"},
        {"X-Fal-Webhook-Signature": "zz"},
        {"X-Fal-Webhook-Signature": "ab"},
        {"X-Fal-Webhook-Signature": "ab" * 5000},
    ],
)
def test_malformed_signature_headers_are_refused(gateway: Gateway, changes: dict[str, str]) -> None:
    response = httpx.post(
        f"{gateway.url}/webhooks/fal?team=default", content=BODY, headers=_headers(**changes)
    )
    assert response.status_code == 401, response.text
    assert response.json()["error_type"] == "invalid_webhook"
    assert response.headers["x-fal-error-type"] == "invalid_webhook"
