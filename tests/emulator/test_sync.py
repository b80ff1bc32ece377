"""Sync runs (``fal.run`` semantics) on the ``/sync`` prefix."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx

from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator


def test_sync_run_returns_the_output_directly(client: httpx.Client) -> None:
    response = client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT, seed=9))

    assert response.status_code == 200
    assert response.headers["x-fal-request-id"]
    output = response.json()
    assert output["seed"] == 9
    assert output["images"][0]["width"] == 64


def test_sync_run_validates_like_the_queue(client: httpx.Client) -> None:
    response = client.post(f"/sync/{KONTEXT}", json={"prompt": "x"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image_url"]


def test_sync_run_errors_are_returned_with_their_status(client: httpx.Client) -> None:
    body = valid_body(INPAINTING, image_url="http://127.0.0.1:9/none.png")
    response = client.post(f"/sync/{INPAINTING}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "file_download_error"


def test_hanging_up_a_sync_run_cancels_it_and_frees_the_runner() -> None:
    with Emulator({"runners": 1, "queue_delay": 0, "run_time": 5.0}) as single:

        def hang_up_early() -> None:
            with single.client() as sync_client, contextlib.suppress(httpx.ReadTimeout):
                sync_client.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT), timeout=0.5)

        caller = threading.Thread(target=hang_up_early)
        caller.start()
        caller.join()
        with single.client() as client:
            started = time.monotonic()
            queued = submit(client, INPAINTING, valid_body(INPAINTING))
            wait_status(client, queued["status_url"], "IN_PROGRESS", timeout=3)
            # Without the cancel the runner would stay busy for the sync job's full 5 s.
            assert time.monotonic() - started < 3
