"""Webhooks: fal's payload, signed as fal signs, verifiable with the JWKS, retried until taken."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, KONTEXT, submit, valid_body
from tests.peer import Peer, Received


def _public_keys(client: httpx.Client) -> list[Ed25519PublicKey]:
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = []
    for jwk in jwks.json()["keys"]:
        assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
        key = OKPAlgorithm.from_jwk(json.dumps(jwk))
        assert isinstance(key, Ed25519PublicKey)
        keys.append(key)
    return keys


def _verify(delivery: Received, keys: list[Ed25519PublicKey]) -> bool:
    """Verify as fal's documentation tells receivers to, independently of the emulator's code."""
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    message = "\n".join(
        [
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(delivery.body).hexdigest(),
        ]
    ).encode()
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


def _hook(peer: Peer, name: str) -> tuple[str, str]:
    path = f"/hooks/{name}-{time.monotonic_ns()}"
    return path, f"{peer.url}{path}"


def test_completed_job_posts_signed_ok_payload(client: httpx.Client, peer: Peer) -> None:
    path, url = _hook(peer, "ok")
    submitted = submit(client, INPAINTING, valid_body(INPAINTING), fal_webhook=url)
    assert submitted["gateway_request_id"] == submitted["request_id"]

    [delivery] = peer.wait_for_posts(path, 1)

    payload: dict[str, Any] = json.loads(delivery.body)
    assert payload["request_id"] == submitted["request_id"]
    assert payload["gateway_request_id"] == submitted["request_id"]
    assert payload["status"] == "OK"
    assert payload["payload"]["images"][0]["width"] == 64
    assert "error" not in payload
    assert delivery.headers["X-Fal-Webhook-Request-Id"] == submitted["request_id"]
    assert abs(int(delivery.headers["X-Fal-Webhook-Timestamp"]) - time.time()) < 60
    assert _verify(delivery, _public_keys(client))


def test_tampered_body_does_not_verify(client: httpx.Client, peer: Peer) -> None:
    path, url = _hook(peer, "tamper")
    submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
    [delivery] = peer.wait_for_posts(path, 1)
    forged = Received(
        delivery.path, delivery.headers, delivery.body.replace(b"OK", b"KO"), delivery.at
    )
    assert not _verify(forged, _public_keys(client))


def test_failed_job_posts_error_payload(client: httpx.Client, peer: Peer) -> None:
    path, url = _hook(peer, "error")
    body = valid_body(INPAINTING, image_url="http://127.0.0.1:9/unreachable.png")
    submit(client, INPAINTING, body, fal_webhook=url)

    [delivery] = peer.wait_for_posts(path, 1)

    payload = json.loads(delivery.body)
    assert payload["status"] == "ERROR"
    assert payload["error"] == "Invalid status code: 422"
    assert payload["payload"]["detail"][0]["type"] == "file_download_error"
    assert _verify(delivery, _public_keys(client))


def test_refused_deliveries_are_retried_until_accepted(client: httpx.Client, peer: Peer) -> None:
    path, url = _hook(peer, "retry")
    peer.fail_next = 2
    submit(client, INPAINTING, valid_body(INPAINTING), fal_webhook=url)

    deliveries = peer.wait_for_posts(path, 3)

    assert len({d.body for d in deliveries}) == 1
    keys = _public_keys(client)
    assert all(_verify(d, keys) for d in deliveries)
    time.sleep(0.3)
    assert len(peer.posts(path)) == 3  # no more attempts after the 2xx


def test_retry_schedule_backs_off(client: httpx.Client, peer: Peer, knobs: SetKnobs) -> None:
    knobs(webhook_retry_scale=0.01)  # 70 ms, 140 ms, 280 ms, ...
    path, url = _hook(peer, "backoff")
    peer.fail_next = 3
    submit(client, INPAINTING, valid_body(INPAINTING), fal_webhook=url)

    times = [d.at for d in peer.wait_for_posts(path, 4)]

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] >= 0.06
    assert gaps[2] > gaps[0]


def _finished_attempts(
    client: httpx.Client, request_id: str, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """The emulator's webhook attempts for ``request_id`` once ``count`` of them have ended (an
    attempt is listed, as pending, from the moment it starts)."""
    deadline = time.monotonic() + timeout
    attempts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        attempts = [
            a
            for a in client.get("/_emulator/webhooks").json()["attempts"]
            if a["request_id"] == request_id
        ]
        if len(attempts) >= count and all(a["outcome"] != "pending" for a in attempts):
            break
        time.sleep(0.05)
    return attempts


def test_failing_webhook_knob_drops_attempts_then_delivers(
    client: httpx.Client, peer: Peer, knobs: SetKnobs
) -> None:
    knobs(webhook_drop_attempts=2)
    path, url = _hook(peer, "drop")
    submitted = submit(client, INPAINTING, valid_body(INPAINTING), fal_webhook=url)

    peer.wait_for_posts(path, 1)

    attempts = _finished_attempts(client, submitted["request_id"], 3)
    assert [a["outcome"] for a in attempts] == ["dropped", "dropped", "delivered"]
    assert len(peer.posts(path)) == 1


def test_slow_webhook_knob_delays_delivery(
    client: httpx.Client, peer: Peer, knobs: SetKnobs
) -> None:
    knobs(webhook_delay=1.0, run_time=0.0, queue_delay=0.0)
    path, url = _hook(peer, "slow")
    started = time.time()
    submit(client, INPAINTING, valid_body(INPAINTING), fal_webhook=url)

    [delivery] = peer.wait_for_posts(path, 1)

    assert delivery.at - started >= 1.0


def test_unreachable_receiver_gets_the_first_attempt_and_ten_retries(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(webhook_retry_scale=0.0001)
    submitted = submit(
        client, INPAINTING, valid_body(INPAINTING), fal_webhook="http://127.0.0.1:9/hook"
    )
    attempts = _finished_attempts(client, submitted["request_id"], 11)
    assert len(attempts) == 11  # the first attempt and fal's 10 retries, then it gives up
    assert all(a["outcome"].startswith("error") for a in attempts)
