"""A key is checked before anything else is done, and its allowed origins hold on every route."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.jobs import KONTEXT, submit, valid_body, wait_status
from tests.servers import Gateway

SHOP = "https://shop.example"
ELSEWHERE = "https://elsewhere.example"


def made_up_key(gateway: Gateway) -> str:
    """A token of the right form, in a team that exists, whose key does not."""
    gateway.ensure_team("default")
    return f"fgw_default_{'z' * 12}_{'A' * 32}"


def first_line_of_answer(gateway: Gateway, token: str, path: str, announced: int) -> str:
    """Send the headers of a ``announced``-byte body and only 1 KiB of it; the status line the
    gateway answers with before the rest arrives."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Key {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {announced}\r\n\r\n"
            ).encode()
            + b"{" * 1024
        )
        return conn.recv(4096).split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("path", [f"/{KONTEXT}", f"/sync/{KONTEXT}"])
def test_a_made_up_key_is_refused_before_the_body_is_read(gateway: Gateway, path: str) -> None:
    line = first_line_of_answer(gateway, made_up_key(gateway), path, 40 * 1024 * 1024)
    assert line == "HTTP/1.1 401 Unauthorized"


def test_a_made_up_key_learns_nothing_about_its_webhook_target(gateway: Gateway) -> None:
    with gateway.client(made_up_key(gateway)) as client:
        response = client.post(
            f"/{KONTEXT}",
            params={"fal_webhook": "https://10.1.2.3/hook"},
            json=valid_body(KONTEXT),
        )
    assert response.status_code == 401
    assert "10.1.2.3" not in response.text


def test_allowed_origins_hold_on_every_route_a_key_can_call(gateway: Gateway) -> None:
    token, _ = gateway.new_key(policy={"allowed_origins": [SHOP]})
    with gateway.client(token) as client:
        job = submit(client, KONTEXT, valid_body(KONTEXT))
        wait_status(client, job["status_url"])
        calls = [
            ("GET", job["status_url"]),
            ("GET", f"{job['status_url']}/stream"),
            ("GET", job["response_url"]),
            ("PUT", job["cancel_url"]),
            ("GET", "/v1/me"),
            ("POST", "/storage/upload/initiate"),
            ("POST", f"/{KONTEXT}"),
        ]
        upload = {"file_name": "a.png", "content_type": "image/png"}
        for method, url in calls:
            body = (
                (upload if "storage" in url else valid_body(KONTEXT)) if method == "POST" else None
            )
            refused = client.request(method, url, headers={"Origin": ELSEWHERE}, json=body)
            assert refused.status_code == 403, (url, refused.text)
            assert refused.json()["error_type"] == "origin_not_allowed"
            for headers in ({"Origin": SHOP}, {}):
                allowed = client.request(method, url, headers=headers, json=body)
                # A cancel of a finished job is fal's own 400 (ALREADY_COMPLETED).
                expected = 400 if url.endswith("/cancel") else 200
                assert allowed.status_code == expected, (url, headers, allowed.text)


def test_a_key_of_another_form_is_refused_as_before(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        response = client.post(f"/{KONTEXT}", headers={"Authorization": "Key nonsense"}, json={})
    assert response.status_code == 401
