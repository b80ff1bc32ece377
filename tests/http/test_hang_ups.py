"""A client that hangs up halfway through its request body leaves no traceback behind."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.jobs import KONTEXT
from tests.servers import Gateway

pytestmark = pytest.mark.on_cluster


def _metric(gateway: Gateway, pattern: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    return sum(float(value) for value in re.findall(rf"^{pattern} (\S+)$", text, re.MULTILINE))


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _hang_up_mid_body(gateway: Gateway, method: str, path: str, route: str, auth: str) -> None:
    """Send the headers and half the announced body, wait until the handler is at work, hang
    up, and wait until the gateway has finished with the request."""
    # Answered 499 (client closed request), as nginx logs it, and neither 500 nor 502.
    answered = rf'gateway_requests_total\{{[^}}]*route="{route}",status="499"\}}'
    before = _metric(gateway, answered)
    port = int(gateway.url.rsplit(":", 1)[1])
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + b'{"prompt": "' + b"x" * 488)
        # The /metrics request counts itself: a second request in flight is ours.
        _wait_for(lambda: _metric(gateway, "gateway_requests_in_flight") >= 2, "handler")
    _wait_for(lambda: _metric(gateway, answered) > before, f"{route} to finish")


def test_hanging_up_mid_submit_or_run(gateway: Gateway) -> None:
    token, _ = gateway.new_key()
    bearer = f"Bearer {token}"
    _hang_up_mid_body(gateway, "POST", f"/{KONTEXT}", "submit", bearer)
    _hang_up_mid_body(gateway, "POST", f"/sync/{KONTEXT}", "run", bearer)


def test_hanging_up_mid_upload(gateway: Gateway) -> None:
    token, created = gateway.new_key()
    _hang_up_mid_body(gateway, "POST", "/storage/upload/initiate", "initiate", f"Bearer {token}")
    with gateway.client(token) as client:
        url = client.post("/storage/upload/initiate", json={"file_name": "a.png"}).json()
    path = url["upload_url"].removeprefix(gateway.url)
    _hang_up_mid_body(gateway, "PUT", path, "put", "")
    with gateway.admin() as admin:
        # The bytes counted against the quota when the upload began are given back.
        assert admin.get(f"/admin/v1/keys/{created['id']}").json()["uploaded_bytes"] == 0


def test_hanging_up_mid_admin_call_or_webhook(gateway: Gateway) -> None:
    admin = f"Bearer {Gateway.ADMIN_TOKEN}"
    _hang_up_mid_body(gateway, "POST", "/admin/v1/keys", "create_key", admin)
    _hang_up_mid_body(gateway, "POST", "/webhooks/fal", "fal_webhook", "")
