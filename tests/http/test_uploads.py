"""Upload URLs: only the gateway's own upload tokens open them, and only while the key they were
issued to is active."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.upstream.links import UPLOAD_GRANT, Links
from tests.jobs import KONTEXT, valid_body
from tests.servers import Emulator, Gateway, UpstreamLog

pytestmark = pytest.mark.on_cluster

NOT_FOUND = {"detail": "Upload not found or expired", "error_type": "not_found"}


def _initiate(client: httpx.Client) -> str:
    spec = {"file_name": "in.png", "content_type": "image/png"}
    initiated = client.post("/storage/upload/initiate", json=spec)
    assert initiated.status_code == 200, initiated.text
    url: str = initiated.json()["upload_url"]
    return url


def _uploads(emulator: Emulator, since: UpstreamLog) -> list[dict[str, object]]:
    return [r for r in since.requests() if r["method"] == "PUT"]


def test_a_file_link_token_is_no_upload_token(
    caller: httpx.Client, gateway: Gateway, emulator: Emulator
) -> None:
    ran = caller.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT))
    file_link = ran.json()["images"][0]["url"]
    token = file_link.removeprefix(f"{gateway.url}/files/").split("/")[0]
    upstream = UpstreamLog(emulator)
    put = httpx.put(f"{gateway.url}/storage/upload/{token}", content=b"x" * 10)
    assert (put.status_code, put.json()) == (404, NOT_FOUND)
    assert put.headers["x-fal-error-type"] == "not_found"
    # And the other way round: an upload token is no file link.
    upload_token = _initiate(caller).rsplit("/", 1)[1]
    assert httpx.get(f"{gateway.url}/files/{upload_token}/in.png").status_code == 404
    assert _uploads(emulator, upstream) == []


@pytest.mark.parametrize(
    "grant",
    [
        b"not json",
        b"[1, 2]",
        b'{"url": "http://127.0.0.1:9/x", "team": "default", "key": "k", "expires": "later"}',
        b'{"url": 5, "team": "default", "key": "k", "expires": 1e300}',
        b'{"team": "default"}',
    ],
)
def test_authentic_tokens_holding_no_valid_grant_are_not_found(
    gateway: Gateway, grant: bytes
) -> None:
    # Sealed with the test gateway's link secret (its admin token), as only the gateway could.
    links = Links(gateway.url, [], [], Gateway.ADMIN_TOKEN.encode())
    token = links.seal(grant, purpose=UPLOAD_GRANT)
    put = httpx.put(f"{gateway.url}/storage/upload/{token}", content=b"x")
    assert (put.status_code, put.json()) == (404, NOT_FOUND)


def test_a_revoked_keys_upload_urls_stop_working(gateway: Gateway, emulator: Emulator) -> None:
    token, created = gateway.new_key()
    with gateway.client(token) as client:
        used_before, kept = _initiate(client), _initiate(client)
    assert httpx.put(used_before, content=b"x" * 10).status_code == 200
    with gateway.admin() as admin:
        assert admin.post(f"/admin/v1/keys/{created['id']}/revoke").status_code == 200
        upstream = UpstreamLog(emulator)
        put = httpx.put(kept, content=b"y" * 10)
        assert put.status_code == 403
        assert put.json() == {
            "detail": "The key this upload URL was issued to is no longer active",
            "error_type": "upload_revoked",
        }
        assert _uploads(emulator, upstream) == []
        assert admin.get(f"/admin/v1/keys/{created['id']}").json()["uploaded_bytes"] == 10


def test_an_expired_keys_upload_urls_stop_working(gateway: Gateway) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    token, _ = gateway.new_key(expires_at=expires.isoformat())
    with gateway.client(token) as client:
        url = _initiate(client)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert httpx.put(url, content=b"x").status_code == 403
