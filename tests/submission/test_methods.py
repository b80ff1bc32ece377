"""Submit and sync run paths take POST only: other methods are 405 with ``Allow: POST``, while
the request paths below them keep their own methods."""

from __future__ import annotations

import httpx
import pytest

from tests.jobs import ALL_ENDPOINTS, INPAINTING, submit, valid_body
from tests.servers import Emulator


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("prefix", ["", "/sync"])
@pytest.mark.parametrize("server", ["gateway", "emulator"])
def test_other_methods_on_submit_paths_are_405(
    caller: httpx.Client, client: httpx.Client, server: str, prefix: str, method: str
) -> None:
    http = caller if server == "gateway" else client
    for endpoint in ALL_ENDPOINTS:
        response = http.request(method, f"{prefix}/{endpoint}")
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"
        assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("server", ["gateway", "emulator"])
def test_request_paths_and_unknown_paths_keep_their_answers(
    caller: httpx.Client, client: httpx.Client, emulator: Emulator, server: str
) -> None:
    http = caller if server == "gateway" else client
    submitted = submit(http, INPAINTING, valid_body(INPAINTING))
    assert http.get(submitted["status_url"]).status_code in (200, 202)
    # fal drops the subpath from request paths: with it, the path names nothing (404, as before).
    assert http.get(f"/{INPAINTING}/requests/{submitted['request_id']}/status").status_code == 404
    assert http.put(submitted["cancel_url"]).status_code in (200, 202, 400)
    assert http.get("/fal-ai/no-such-app").status_code == 404
    assert http.delete("/fal-ai/flux-lora/inpainting/extra").status_code == 404
