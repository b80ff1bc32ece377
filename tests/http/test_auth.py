"""Caller authentication: every refusal is the same 401 in fal's shape."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from tests.jobs import INPAINTING, submit, valid_body, wait_status
from tests.servers import Gateway, RedisServer

REFUSAL = {"detail": "Invalid or missing API key", "error_type": "unauthorized"}


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == REFUSAL
    assert response.headers["x-fal-error-type"] == "unauthorized"


def _refused_everywhere(gateway: Gateway, header: str | None, owned_status_url: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=gateway.url, headers=headers) as client:
        _assert_refused(client.post(f"/{INPAINTING}", json=valid_body(INPAINTING)))
        _assert_refused(client.get(owned_status_url))
        _assert_refused(client.get(owned_status_url.removesuffix("/status")))
        _assert_refused(client.put(owned_status_url.replace("/status", "/cancel")))
        _assert_refused(client.get(f"{owned_status_url}/stream"))


@pytest.fixture
def owned_status_url(caller: httpx.Client) -> str:
    url: str = submit(caller, INPAINTING, valid_body(INPAINTING))["status_url"]
    return url


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic Zm9vOmJhcg==",
        "Bearer not-a-gateway-key",
        "Bearer fgw_default_abcdefghijkl_0123456789abcdefghijklmnopqrstuv",  # well-formed, unknown
    ],
)
def test_missing_malformed_and_unknown_keys(
    gateway: Gateway, owned_status_url: str, header: str | None
) -> None:
    _refused_everywhere(gateway, header, owned_status_url)


def test_wrong_secret_for_a_real_key(gateway: Gateway, owned_status_url: str) -> None:
    token, _ = gateway.new_key()
    wrong = token[:-1] + ("a" if token[-1] != "a" else "b")
    _refused_everywhere(gateway, f"Bearer {wrong}", owned_status_url)


def test_team_in_token_must_match_the_key(gateway: Gateway, owned_status_url: str) -> None:
    token, _ = gateway.new_key(team_id="red")
    moved = token.replace("fgw_red_", "fgw_blue_")
    _refused_everywhere(gateway, f"Bearer {moved}", owned_status_url)


def test_revoked_key_stops_working_at_once(gateway: Gateway) -> None:
    token, created = gateway.new_key()
    with gateway.client(token) as client:
        submitted = submit(client, INPAINTING, valid_body(INPAINTING))
        with gateway.admin() as admin:
            assert admin.post(f"/admin/v1/keys/{created['id']}/revoke").status_code == 200
        _refused_everywhere(gateway, f"Bearer {token}", submitted["status_url"])


def test_expired_key_is_refused(gateway: Gateway) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=4)
    token, _ = gateway.new_key(expires_at=expires.isoformat())
    with gateway.client(token) as client:
        submitted = submit(client, INPAINTING, valid_body(INPAINTING))
        wait_status(client, submitted["status_url"])
    time.sleep(max(0.0, expires.timestamp() - time.time()) + 0.2)
    _refused_everywhere(gateway, f"Bearer {token}", submitted["status_url"])


def test_tokens_are_recognisable_and_secrets_not_stored(
    gateway: Gateway, redis_server: RedisServer
) -> None:
    token, _ = gateway.new_key()
    assert token.startswith("fgw_default_")
    with redis.Redis.from_url(redis_server.url) as store:
        for name in store.scan_iter("*"):
            kind = store.type(name)
            values = store.hgetall(name) if kind == b"hash" else {}
            blob = repr(values).encode()
            assert token.split("_")[-1].encode() not in blob
