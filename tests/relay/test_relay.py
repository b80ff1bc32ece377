"""The webhook relay, through the emulator's real webhooks: verified in, signed out, never lost."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.protocol.webhook_signature import (
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_ID_HEADER,
    signed_message,
)
from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.peer import Peer, Received
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

pytestmark = pytest.mark.on_cluster


@pytest.fixture(scope="module")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fal-key") / "webhook.pem"


@pytest.fixture(scope="module")
def signing_emulator(signing_key_file: Path) -> Iterator[Emulator]:
    settings = {"queue_delay": 0, "run_time": 0.05, "signing_key_file": signing_key_file}
    with Emulator(settings) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def relay_gateway(private_redis_url: str, signing_emulator: Emulator) -> Iterator[Gateway]:
    # Its own Redis: the session's gateway would otherwise deliver some of these webhooks,
    # and this process's delivery metrics would miss them.
    with Gateway(private_redis_url, signing_emulator.url) as gateway:
        yield gateway


def _hook(peer: Peer, name: str) -> tuple[str, str]:
    path = f"/hooks/{name}-{os.urandom(4).hex()}"
    return path, f"{peer.url}{path}"


def _key(gateway: Gateway) -> tuple[str, dict[str, Any]]:
    token, created = gateway.new_key()
    return token, created


def _verified(delivery: Received, secret: str) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    payload: dict[str, Any] = Webhook(secret).verify(delivery.body.decode(), headers)
    return payload


def _fal_sign(key_file: Path, request_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return _sign_with(key, request_id, body, timestamp)


def _sign_with(
    key: Ed25519PrivateKey, request_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    user = "emulator-user"
    signature = key.sign(signed_message(request_id, user, str(timestamp), body)).hex()
    return {
        REQUEST_ID_HEADER: request_id,
        USER_ID_HEADER: user,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature,
        "Content-Type": "application/json",
    }


def test_completion_is_relayed_signed_per_standard_webhooks(
    relay_gateway: Gateway, signing_emulator: Emulator, peer: Peer
) -> None:
    token, created = _key(relay_gateway)
    path, url = _hook(peer, "ok")
    upstream = UpstreamLog(signing_emulator)
    with relay_gateway.client(token) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)

    [delivery] = peer.wait_for_posts(path, 1)

    payload = _verified(delivery, str(created["webhook_secret"]))
    assert payload["request_id"] == submitted["request_id"]
    assert payload["status"] == "OK"
    assert payload["payload"]["images"][0]["url"].startswith(f"{relay_gateway.url}/files/")
    assert f":{signing_emulator.port}" not in delivery.body.decode()
    assert delivery.headers["webhook-id"] == submitted["request_id"]
    # fal was given the gateway's ingress, never the caller's URL.
    [forwarded] = upstream.submits()
    assert "webhooks%2Ffal" in str(forwarded["query"]) or "webhooks/fal" in str(forwarded["query"])
    assert "hooks" not in str(forwarded["query"]).replace("webhooks", "")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(
            delivery.body.decode(), {k.lower(): v for k, v in delivery.headers.items()}
        )


def test_failed_jobs_are_relayed_as_errors(relay_gateway: Gateway, peer: Peer) -> None:
    token, created = _key(relay_gateway)
    path, url = _hook(peer, "error")
    with relay_gateway.client(token) as client:
        submit(
            client,
            KONTEXT,
            valid_body(KONTEXT, image_url="http://127.0.0.1:9/none.png"),
            fal_webhook=url,
        )
    payload = _verified(peer.wait_for_posts(path, 1)[0], str(created["webhook_secret"]))
    assert payload["status"] == "ERROR"
    assert payload["error"] == "Invalid status code: 422"


def _pending_job(gateway: Gateway, peer: Peer, emulator: Emulator) -> tuple[str, str, str]:
    """A completed job whose real webhook is held back (the emulator reads its webhook delay when
    the job completes) and whose end the gateway has not seen: (request id, team, hook path)."""
    with emulator.client() as control:
        control.patch("/_emulator/knobs", json={"webhook_delay": 60}).raise_for_status()
    token, _ = _key(gateway)
    path, url = _hook(peer, "direct")
    try:
        with gateway.client(token) as client:
            submitted = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
        # Watched at the emulator, not through the gateway: a gateway that sees the end
        # records it (and relays the caller's webhook) without waiting for fal's.
        with emulator.client() as direct:
            wait_status(direct, f"/{KONTEXT}/requests/{submitted['request_id']}/status")
    finally:
        with emulator.client() as control:
            control.patch("/_emulator/knobs", json={"webhook_delay": 0}).raise_for_status()
    return submitted["request_id"], "default", path


def _event(request_id: str) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "status": "ERROR",
            "error": "x",
            "payload": None,
        }
    ).encode()


def test_forged_stale_and_malformed_fal_webhooks_are_refused(
    relay_gateway: Gateway, signing_emulator: Emulator, peer: Peer, signing_key_file: Path
) -> None:
    request_id, team, path = _pending_job(relay_gateway, peer, signing_emulator)
    ingress = f"{relay_gateway.url}/webhooks/fal?team={team}"
    body = _event(request_id)
    now = int(time.time())
    cases = {
        "forged": _sign_with(Ed25519PrivateKey.generate(), request_id, body, now),
        "stale": _fal_sign(signing_key_file, request_id, body, now - 330),
        "future": _fal_sign(signing_key_file, request_id, body, now + 330),
        "unsigned": {"Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        response = httpx.post(ingress, content=body, headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error_type"] == "invalid_webhook"
    tampered = _fal_sign(signing_key_file, request_id, body, now)
    assert (
        httpx.post(ingress, content=body.replace(b"ERROR", b"OK"), headers=tampered).status_code
        == 401
    )
    time.sleep(0.5)
    assert peer.posts(path) == []


def test_replayed_and_duplicate_webhooks_are_delivered_once(
    relay_gateway: Gateway, signing_emulator: Emulator, peer: Peer, signing_key_file: Path
) -> None:
    request_id, team, path = _pending_job(relay_gateway, peer, signing_emulator)
    ingress = f"{relay_gateway.url}/webhooks/fal?team={team}"
    body = _event(request_id)
    headers = _fal_sign(signing_key_file, request_id, body, int(time.time()))

    first = httpx.post(ingress, content=body, headers=headers)
    replayed = httpx.post(ingress, content=body, headers=headers)
    resigned = httpx.post(
        ingress,
        content=body,
        headers=_fal_sign(signing_key_file, request_id, body, int(time.time())),
    )

    assert first.json() == {"status": "accepted"}
    assert replayed.json() == resigned.json() == {"status": "duplicate"}
    peer.wait_for_posts(path, 1)
    time.sleep(1.0)
    assert len(peer.posts(path)) == 1


def test_a_receiver_down_for_a_while_gets_the_event_after(
    relay_gateway: Gateway, peer: Peer
) -> None:
    token, created = _key(relay_gateway)
    path, url = _hook(peer, "down")
    peer.fail_paths.add(path)
    with relay_gateway.client(token) as client:
        submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
    peer.wait_for_posts(path, 3)  # refused three times
    peer.fail_paths.discard(path)
    deliveries = peer.wait_for_posts(path, 4, timeout=30)
    assert _verified(deliveries[-1], str(created["webhook_secret"]))["status"] == "OK"
    record = relay_gateway.wait_delivery(str(created["id"]), "delivered")
    assert record["attempts"] >= 4


def test_dead_letters_can_be_replayed(relay_gateway: Gateway, peer: Peer) -> None:
    token, created = _key(relay_gateway)
    path, url = _hook(peer, "dead")
    peer.fail_paths.add(path)
    with relay_gateway.client(token) as client:
        submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
    with relay_gateway.admin() as admin:
        deadline = time.monotonic() + 40
        while not admin.get(
            "/admin/v1/deliveries", params={"key_id": created["id"], "status": "dead"}
        ).json()["deliveries"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        [dead] = admin.get("/admin/v1/deliveries", params={"key_id": str(created["id"])}).json()[
            "deliveries"
        ]
        assert (dead["attempts"], dead["last_error"], dead["last_status"]) == (
            5,
            "answered 500",
            500,
        )
        peer.fail_paths.discard(path)
        replayed = admin.post(
            "/admin/v1/deliveries/replay", params={"key_id": str(created["id"])}
        ).json()
        assert [d["status"] for d in replayed["deliveries"]] == ["pending"]
    assert len(peer.wait_for_posts(path, 6)) == 6


def test_rotated_secret_signs_alongside_the_old_one(relay_gateway: Gateway, peer: Peer) -> None:
    token, created = _key(relay_gateway)
    with relay_gateway.admin() as admin:
        rotated = admin.post(f"/admin/v1/keys/{created['id']}/webhook-secret").json()
    assert rotated["webhook_secret"] != created["webhook_secret"]
    path, url = _hook(peer, "rotated")
    with relay_gateway.client(token) as client:
        submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
    [delivery] = peer.wait_for_posts(path, 1)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    _verified(delivery, str(created["webhook_secret"]))
    _verified(delivery, rotated["webhook_secret"])


def test_delivery_connects_to_the_checked_address_with_the_original_host(
    relay_gateway: Gateway, peer: Peer
) -> None:
    token, _ = _key(relay_gateway)
    port = peer.url.rsplit(":", 1)[1]
    path = f"/hooks/localhost-{os.urandom(3).hex()}"
    with relay_gateway.client(token) as client:
        submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=f"http://localhost:{port}{path}")
    [delivery] = peer.wait_for_posts(path, 1)
    assert delivery.headers["Host"] == f"localhost:{port}"


def test_killed_process_mid_delivery_is_finished_by_another(
    redis_url: str, signing_emulator: Emulator, peer: Peer
) -> None:
    with Gateway(redis_url, signing_emulator.url, {"webhook_timeout": 5}) as victim:
        token, created = victim.new_key()
        path, url = _hook(peer, "killed")
        peer.hold_next = 3.0  # the victim's first attempt hangs at the receiver
        with victim.client(token) as client:
            submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
        peer.wait_for_posts(path, 1)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()

    with Gateway(redis_url, signing_emulator.url) as survivor:
        deliveries = peer.wait_for_posts(path, 2, timeout=30)
        assert _verified(deliveries[-1], str(created["webhook_secret"]))["status"] == "OK"
        survivor.wait_delivery(str(created["id"]), "delivered")


@pytest.fixture(scope="module")
def strict_gateway(signing_emulator: Emulator) -> Iterator[Gateway]:
    # Its own Redis: replicas sharing a Redis share the delivery queue, and this one's webhook
    # rules differ from every other test gateway's (real replicas are configured alike).
    strict = {"webhook_allowed_networks": "", "webhook_allow_http": "false"}
    with (
        RedisServer() as own_redis,
        Gateway(own_redis.url, signing_emulator.url, strict) as gateway,
    ):
        yield gateway


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "http://93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
        "https://user:pw@93.184.216.34/hook",
        "not a url",
    ],
)
def test_private_and_unsafe_webhook_targets_are_refused_before_any_charge(
    strict_gateway: Gateway, signing_emulator: Emulator, url: str
) -> None:
    token, created = strict_gateway.new_key()
    upstream = UpstreamLog(signing_emulator)
    with strict_gateway.client(token) as client:
        response = client.post(f"/{KONTEXT}", json=valid_body(KONTEXT), params={"fal_webhook": url})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["query", "fal_webhook"], "webhook_target")
    assert upstream.submits() == []
    with strict_gateway.admin() as admin:
        assert admin.get(f"/admin/v1/keys/{created['id']}").json()["reserved_micros"] == 0


def test_unknown_requests_are_acknowledged_and_ignored(
    relay_gateway: Gateway, signing_key_file: Path
) -> None:
    body = _event("no-such-request")
    headers = _fal_sign(signing_key_file, "no-such-request", body, int(time.time()))
    response = httpx.post(
        f"{relay_gateway.url}/webhooks/fal?team=default", content=body, headers=headers
    )
    assert response.json() == {"status": "ignored"}


def test_relay_metrics(relay_gateway: Gateway) -> None:
    text = httpx.get(f"{relay_gateway.url}/metrics").text
    assert 'gateway_webhook_deliveries_total{outcome="delivered"}' in text
    assert 'gateway_fal_webhooks_total{outcome="rejected"}' in text
    assert "gateway_webhook_queue_depth" in text
    assert "gateway_webhook_oldest_pending_seconds" in text


def test_deliveries_and_secret_rotation_from_the_cli(relay_gateway: Gateway, peer: Peer) -> None:

    token, created = _key(relay_gateway)
    path, url = _hook(peer, "cli")
    with relay_gateway.client(token) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT), fal_webhook=url)
    peer.wait_for_posts(path, 1)

    def cli(*args: str) -> str:
        done = relay_gateway.cli(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    relay_gateway.wait_delivery(str(created["id"]), "delivered")
    listed = json.loads(cli("deliveries", "list", "--key", str(created["id"]), "--json"))
    assert [(d["id"], d["status"]) for d in listed["deliveries"]] == [
        (submitted["request_id"], "delivered")
    ]
    assert submitted["request_id"] in cli("deliveries", "list", "--key", str(created["id"]))
    cli("deliveries", "replay", submitted["request_id"])
    assert len(peer.wait_for_posts(path, 2)) == 2
    rotated = cli("keys", "rotate-webhook-secret", str(created["id"]))
    assert rotated.startswith("webhook_secret: whsec_")
