"""Sync runs, storage uploads and the fal proxy protocol through the gateway."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.images import decode, png
from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.limits.conftest import new_team, settled_when, team_state, usage
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

pytestmark = pytest.mark.on_cluster

TARGET = "x-fal-target-url"


def test_sync_run_is_admitted_metered_and_returns_the_output(gateway: Gateway) -> None:
    team = new_team(gateway, 10**6)
    token, _ = gateway.new_key(team_id=team)
    with gateway.client(token) as client:
        response = client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT, seed=3))
    assert response.status_code == 200
    assert response.json()["seed"] == 3
    assert response.json()["images"][0]["url"].startswith(f"{gateway.url}/files/")
    assert response.headers["x-fal-request-id"]
    assert response.headers["x-gateway-reserved-micros"] == "108"
    settled_when(lambda: team_state(gateway, team)["balance_micros"] == 10**6 - 108)
    assert team_state(gateway, team)["reserved_micros"] == 0


def test_sync_run_failures_are_refunded(gateway: Gateway) -> None:
    funds = 10**7  # an input the gateway cannot read reserves up to ~7 units
    team = new_team(gateway, funds)
    token, _ = gateway.new_key(team_id=team)
    with gateway.client(token) as client:
        bad_input = valid_body(KONTEXT, image_url="http://127.0.0.1:9/none.png")
        assert client.post(f"/sync/{KONTEXT}", json=bad_input).status_code == 422
        assert client.post(f"/sync/{KONTEXT}", json={"prompt": "x"}).status_code == 422
    assert team_state(gateway, team)["balance_micros"] == funds
    assert team_state(gateway, team)["reserved_micros"] == 0


@pytest.fixture
def single_runner(redis_server: RedisServer) -> Iterator[tuple[Emulator, Gateway]]:
    with (
        Emulator({"runners": 1, "queue_delay": 0, "run_time": 5.0}) as emulator,
        Gateway(redis_server.url, emulator.url) as gateway,
    ):
        yield emulator, gateway


@pytest.mark.parametrize(
    ("rule", "charged"),
    [
        (None, 108),  # the default: charged as fal bills it, at the reservation
        ("charge", 108),
        ("refund", 0),
    ],
)
def test_hanging_up_a_sync_run_frees_fal_and_follows_the_teams_rule(
    single_runner: tuple[Emulator, Gateway], rule: str | None, charged: int
) -> None:
    _, gateway = single_runner
    team = new_team(gateway, 10**6, **({"sync_hangup": rule} if rule else {}))
    token, _ = gateway.new_key(team_id=team)

    def hang_up() -> None:
        with gateway.client(token) as client, contextlib.suppress(httpx.ReadTimeout):
            client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT), timeout=0.7)

    caller = threading.Thread(target=hang_up)
    caller.start()
    caller.join()
    settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
    assert team_state(gateway, team)["balance_micros"] == 10**6 - charged
    assert team_state(gateway, team)["sync_hangup"] == (rule or "charge")
    (row,) = usage(gateway, team_id=team, group_by="team_id")
    assert row["cost_micros"] == charged
    with gateway.client(token) as client:
        started = time.monotonic()
        queued = submit(client, KONTEXT, valid_body(KONTEXT))
        wait_status(client, queued["status_url"], "IN_PROGRESS", timeout=3)
        assert time.monotonic() - started < 3  # the emulator's only runner was freed


def test_a_sync_run_longer_than_the_bind_grace_is_charged(
    redis_server: RedisServer, single_runner: tuple[Emulator, Gateway]
) -> None:
    """fal names a sync run only when it answers; until then the reconciler must not take it
    for a submit that died half-way (it sweeps every 0.2 s here, with a 1 s bind grace)."""
    emulator, _ = single_runner
    fast_sweeps = {"bind_grace": 1, "reconcile_interval": 0.2, "reconcile_after": 0.1}
    with Gateway(redis_server.url, emulator.url, fast_sweeps) as gateway:
        team = new_team(gateway, 10**6)
        token, _ = gateway.new_key(team_id=team)
        with gateway.client(token) as client:
            response = client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT), timeout=30)
        assert response.status_code == 200, response.text
        settled_when(lambda: team_state(gateway, team)["reserved_micros"] == 0)
        assert team_state(gateway, team)["balance_micros"] == 10**6 - 108


def _upload(client: httpx.Client, content: bytes, via_proxy: bool = False) -> dict[str, Any]:
    spec = {"file_name": "in.png", "content_type": "image/png"}
    if via_proxy:
        target = "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3"
        initiated = client.post("/fal/proxy", json=spec, headers={TARGET: target})
    else:
        initiated = client.post(
            "/storage/upload/initiate", params={"storage_type": "gcs"}, json=spec
        )
    assert initiated.status_code == 200, initiated.text
    urls: dict[str, Any] = initiated.json()
    return urls


def test_uploads_go_through_the_gateway_and_work_as_inputs(
    gateway: Gateway, emulator: Emulator, caller: httpx.Client
) -> None:
    content = png(48, 32)
    urls = _upload(caller, content, via_proxy=True)
    assert urls["upload_url"].startswith(f"{gateway.url}/storage/upload/")
    assert urls["file_url"].startswith(f"{gateway.url}/files/")
    assert f":{emulator.port}" not in json.dumps(urls)
    put = httpx.put(urls["upload_url"], content=content, headers={"Content-Type": "image/png"})
    assert put.status_code == 200
    assert httpx.get(urls["file_url"]).content == content

    upstream = UpstreamLog(emulator)
    submitted = submit(caller, KONTEXT, valid_body(KONTEXT, image_url=urls["file_url"]))
    wait_status(caller, submitted["status_url"])
    result = caller.get(submitted["response_url"]).json()
    assert (result["images"][0]["width"], result["images"][0]["height"]) == (48, 32)
    # fal was given its own URL for the file, not a trip back through the gateway.
    forwarded = json.loads(str(upstream.submits()[0]["body"]))
    assert forwarded["image_url"].startswith(f"{emulator.url}/files/uploads/")


def test_upload_quota_and_tokens(gateway: Gateway) -> None:
    token, created = gateway.new_key(upload_quota_bytes=1000)
    with gateway.client(token) as client:
        first = _upload(client, b"")
        assert httpx.put(first["upload_url"], content=b"x" * 600).status_code == 200
        second = _upload(client, b"")
        too_much = httpx.put(second["upload_url"], content=b"x" * 600)
        assert too_much.status_code == 413
        assert too_much.json()["error_type"] == "upload_quota"
        assert httpx.put(second["upload_url"], content=b"x" * 300).status_code == 200
        with gateway.admin() as admin:
            assert admin.get(f"/admin/v1/keys/{created['id']}").json()["uploaded_bytes"] == 900
        refused = client.post("/storage/upload/initiate", json={"file_name": "a"})
        assert refused.status_code == 200  # still under quota by 100 bytes
    forged = httpx.put(f"{gateway.url}/storage/upload/not-a-token", content=b"x")
    assert forged.status_code == 404
    assert httpx.post(f"{gateway.url}/storage/upload/initiate", json={}).status_code == 401


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", f"https://queue.fal.run/{INPAINTING}", True),
        ("POST", f"https://fal.run/{KONTEXT}", True),
    ],
)
def test_proxy_reaches_queue_and_sync_with_the_same_rules(
    gateway: Gateway, caller: httpx.Client, method: str, target: str, body: bool
) -> None:
    endpoint = target.split("/", 3)[3]
    response = caller.request(
        method, "/fal/proxy", json=valid_body(endpoint), headers={TARGET: target}
    )
    assert response.status_code == 200, response.text
    assert "x-gateway-reserved-micros" in response.headers
    anonymous = httpx.post(
        f"{gateway.url}/fal/proxy", json=valid_body(endpoint), headers={TARGET: target}
    )
    assert anonymous.status_code == 401


def test_proxy_status_stream_result_cancel_and_logs(gateway: Gateway, caller: httpx.Client) -> None:
    submitted = caller.post(
        "/fal/proxy",
        json=valid_body(INPAINTING),
        headers={TARGET: f"https://queue.fal.run/{INPAINTING}"},
    ).json()
    base = f"https://queue.fal.run/fal-ai/flux-lora/requests/{submitted['request_id']}"
    with connect_sse(
        caller, "GET", "/fal/proxy", headers={TARGET: f"{base}/status/stream?logs=1"}
    ) as source:
        events = [json.loads(e.data) for e in source.iter_sse() if e.data]
    assert events[-1]["status"] == "COMPLETED"
    assert any(e["logs"] for e in events)
    status = caller.get("/fal/proxy", headers={TARGET: f"{base}/status?logs=1"})
    assert status.json()["status"] == "COMPLETED"
    assert status.json()["logs"]
    result = caller.get("/fal/proxy", headers={TARGET: base})
    assert result.json()["images"][0]["width"] == 64
    cancel = caller.put("/fal/proxy", headers={TARGET: f"{base}/cancel"})
    assert cancel.json()["status"] == "ALREADY_COMPLETED"


@pytest.mark.parametrize(
    "target",
    [
        None,
        "https://evil.example/fal-ai/flux-lora/inpainting",
        "http://queue.fal.run/fal-ai/flux-lora/inpainting",
        "https://queue.fal.run/admin/v1/keys",
        "https://queue.fal.run/fal-ai/flux-pro",
        "https://queue.fal.run/other/app/requests/x/status",
        "https://rest.fal.ai/tokens/",
        "https://rest.fal.ai/storage/upload/initiate-multipart",
        "https://fal.run/fal-ai/flux-lora/requests/x",
        "not a url",
    ],
)
def test_proxy_refuses_targets_outside_what_it_serves(
    caller: httpx.Client, target: str | None
) -> None:
    headers = {TARGET: target} if target else {}
    response = caller.post("/fal/proxy", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error_type"] == "invalid_target"


@pytest.fixture(scope="module")
def cors_gateway(redis_server: RedisServer, emulator: Emulator) -> Iterator[Gateway]:
    with Gateway(redis_server.url, emulator.url, {"cors_origins": "*"}) as gateway:
        yield gateway


def test_cors_for_browsers_and_origins_per_key(cors_gateway: Gateway) -> None:
    preflight = httpx.options(
        f"{cors_gateway.url}/fal/proxy",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": (
                "authorization,content-type,x-fal-target-url,x-fal-queue-priority"
            ),
        },
    )
    assert preflight.status_code == 200
    assert "x-fal-target-url" in preflight.headers["access-control-allow-headers"].lower()
    token, _ = cors_gateway.new_key(policy={"allowed_origins": ["https://app.example"]})
    target = {TARGET: f"https://queue.fal.run/{KONTEXT}"}
    with cors_gateway.client(token) as client:
        allowed = client.post(
            "/fal/proxy",
            json=valid_body(KONTEXT),
            headers={**target, "Origin": "https://app.example"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] in ("*", "https://app.example")
        assert "x-fal-request-id" in allowed.headers["access-control-expose-headers"].lower()
        other = client.post(
            "/fal/proxy",
            json=valid_body(KONTEXT),
            headers={**target, "Origin": "https://evil.example"},
        )
        assert other.status_code == 403
        assert other.json()["error_type"] == "origin_not_allowed"


def test_uploaded_image_dimensions_survive(caller: httpx.Client) -> None:
    content = png(32, 16)
    urls = _upload(caller, content)
    httpx.put(urls["upload_url"], content=content, headers={"Content-Type": "image/png"})
    assert decode(httpx.get(urls["file_url"]).content).size == (32, 16)


def test_browser_status_polls_get_cors_headers(cors_gateway: Gateway) -> None:
    token, _ = cors_gateway.new_key()
    with cors_gateway.client(token) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT))
        plain = client.get(submitted["status_url"])
        browser = client.get(submitted["status_url"], headers={"Origin": "https://app.example"})

    assert "access-control-allow-origin" not in plain.headers
    assert browser.status_code in (200, 202)
    assert browser.headers["access-control-allow-origin"] in ("*", "https://app.example")
