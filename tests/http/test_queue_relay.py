"""fal's queue API through the gateway, end to end to the emulator."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.conftest import SetKnobs
from tests.images import decode
from tests.jobs import ALL_ENDPOINTS, INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator, Gateway

pytestmark = pytest.mark.on_cluster


def _no_upstream_trace(text: str, emulator: Emulator) -> None:
    assert f":{emulator.port}" not in text
    assert Emulator.KEY not in text


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
def test_each_endpoint_submit_status_result_through_the_gateway(
    caller: httpx.Client, gateway: Gateway, emulator: Emulator, endpoint: str
) -> None:
    submitted = caller.post(f"/{endpoint}", json=valid_body(endpoint, output_format="png"))
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    request_id = body["request_id"]
    app_id = "/".join(endpoint.split("/")[:2])
    base = f"{gateway.url}/{app_id}/requests/{request_id}"
    assert (body["response_url"], body["status_url"], body["cancel_url"]) == (
        base,
        f"{base}/status",
        f"{base}/cancel",
    )
    assert submitted.headers["x-fal-request-id"] == request_id

    done = wait_status(caller, body["status_url"], logs="1")
    assert done.status_code == 200
    result = caller.get(body["response_url"])

    assert result.status_code == 200
    assert result.headers["x-fal-request-id"] == request_id
    for answer in (submitted, done, result):
        _no_upstream_trace(answer.text, emulator)
    image = result.json()["images"][0]
    assert image["url"].startswith(f"{gateway.url}/files/")
    download = httpx.get(image["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert decode(download.content).size == (image["width"], image["height"])


def test_key_scheme_works_like_bearer(gateway: Gateway) -> None:
    token, _ = gateway.new_key()
    with gateway.client(token, scheme="Key") as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT))
        assert wait_status(client, submitted["status_url"]).status_code == 200


def test_upstream_sees_the_resellers_fal_key_never_the_callers(
    caller: httpx.Client, emulator: Emulator
) -> None:
    token = caller.headers["authorization"].split(" ", 1)[1]
    with emulator.client() as upstream:
        mark = upstream.get("/_emulator/requests").json()["next"]
        submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
        wait_status(caller, submitted["status_url"])
        seen = upstream.get("/_emulator/requests", params={"since": mark}).json()["requests"]

    ours = [r for r in seen if submitted["request_id"] in r["path"] or r["method"] == "POST"]
    assert ours
    reseller = hashlib.sha256(Emulator.KEY.encode()).hexdigest()[:12]
    assert {r["key_fingerprint"] for r in ours} == {reseller}
    assert all(token not in json.dumps(r) for r in seen)


def test_fal_headers_are_forwarded(caller: httpx.Client, knobs: SetKnobs) -> None:
    knobs(queue_delay=1.5)
    response = caller.post(
        f"/{INPAINTING}", json=valid_body(INPAINTING), headers={"X-Fal-Request-Timeout": "1"}
    )
    submitted = response.json()
    wait_status(caller, submitted["status_url"], timeout=10)
    result = caller.get(submitted["response_url"])
    assert result.status_code == 504
    assert result.json()["error_type"] == "request_timeout"
    assert result.headers["x-fal-request-timeout-type"] == "user"


def test_cancel_through_the_gateway(caller: httpx.Client, knobs: SetKnobs) -> None:
    knobs(queue_delay=5.0)
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))

    cancelled = caller.put(submitted["cancel_url"])

    assert cancelled.status_code == 200
    assert cancelled.json() == {"status": "OK"}
    assert caller.get(submitted["status_url"]).json()["status"] == "COMPLETED"


def test_subpath_is_dropped_for_status(caller: httpx.Client) -> None:
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
    wrong = caller.get(f"/fal-ai/flux-lora/inpainting/requests/{submitted['request_id']}/status")
    assert wrong.status_code == 404
    assert wrong.json()["detail"] == "Not Found"


def test_unknown_endpoints_are_404_in_fal_shape(caller: httpx.Client) -> None:
    for path in ("/fal-ai/flux-pro", "/fal-ai/flux-lora/text-to-image", "/someone/else"):
        response = caller.post(path, json={"prompt": "x"})
        assert response.status_code == 404
        assert response.json()["error_type"] == "application_not_found"


def test_callers_bad_body_gets_fals_422(caller: httpx.Client) -> None:
    response = caller.post(f"/{INPAINTING}", json={"prompt": "no images"})
    assert response.status_code == 422
    locs = [item["loc"] for item in response.json()["detail"]]
    assert ["body", "image_url"] in locs


def test_file_links_cannot_be_forged(gateway: Gateway, caller: httpx.Client) -> None:
    submitted = submit(caller, KONTEXT, valid_body(KONTEXT))
    wait_status(caller, submitted["status_url"])
    url = caller.get(submitted["response_url"]).json()["images"][0]["url"]
    token = url.split("/files/")[1].split("/")[0]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert httpx.get(url.replace(token, tampered)).status_code == 404
    assert httpx.get(f"{gateway.url}/files/aHR0cDovL2V4YW1wbGUuY29t/x.png").status_code == 404
