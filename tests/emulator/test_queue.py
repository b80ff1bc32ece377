"""The emulated queue API: submit, status, result, cancel and request-id scoping."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import SetKnobs
from tests.jobs import (
    ALL_ENDPOINTS,
    GENERAL_INPAINTING,
    INPAINTING,
    KONTEXT,
    run,
    submit,
    valid_body,
    wait_status,
)
from tests.servers import Emulator


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
def test_submit_answers_fal_shape_with_urls_scoped_to_owner_and_app(
    client: httpx.Client, emulator: Emulator, endpoint: str
) -> None:
    response = client.post(f"/{endpoint}", json=valid_body(endpoint))

    assert response.status_code == 200
    body = response.json()
    request_id = body["request_id"]
    app_id = "/".join(endpoint.split("/")[:2])
    base = f"{emulator.url}/{app_id}/requests/{request_id}"
    assert body["status"] == "IN_QUEUE"
    assert body["response_url"] == base
    assert body["status_url"] == f"{base}/status"
    assert body["cancel_url"] == f"{base}/cancel"
    assert isinstance(body["queue_position"], int)
    assert response.headers["x-fal-request-id"] == request_id


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
def test_every_endpoint_completes_with_images_timings_seed_and_prompt(
    client: httpx.Client, endpoint: str
) -> None:
    result = run(client, endpoint, valid_body(endpoint))

    assert result.status_code == 200
    output = result.json()
    assert set(output) >= {"images", "timings", "seed", "has_nsfw_concepts", "prompt"}
    assert output["prompt"] == "a red fox"
    assert output["has_nsfw_concepts"] == [False]
    image = output["images"][0]
    assert set(image) >= {"url", "width", "height", "content_type"}


def test_status_is_202_while_pending_and_200_when_completed_with_required_keys(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(queue_delay=0.3, run_time=0.5)
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))

    queued = client.get(submitted["status_url"])
    assert queued.status_code == 202
    assert queued.json()["status"] == "IN_QUEUE"
    assert "queue_position" in queued.json()
    assert "logs" in queued.json()

    running = wait_status(client, submitted["status_url"], "IN_PROGRESS")
    assert running.status_code == 202
    assert running.json()["logs"] is None  # keys present even when logs were not asked for
    assert "queue_position" in running.json()

    done = wait_status(client, submitted["status_url"])
    assert done.status_code == 200
    assert done.json()["logs"] is None
    assert done.json()["metrics"]["inference_time"] > 0


@pytest.mark.parametrize(
    ("flag", "wanted"), [("1", True), ("true", True), ("0", False), ("false", False)]
)
def test_logs_flag_accepts_js_and_python_spellings(
    client: httpx.Client, flag: str, wanted: bool
) -> None:
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))
    done = wait_status(client, submitted["status_url"], logs=flag)

    logs = done.json()["logs"]
    if wanted:
        assert logs, "expected log lines"
        assert {"message", "level", "source", "timestamp"} <= set(logs[0])
    else:
        assert logs is None


def test_logs_stream_while_in_progress(client: httpx.Client, knobs: SetKnobs) -> None:
    knobs(run_time=1.0, log_interval=0.1)
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))
    running = wait_status(client, submitted["status_url"], "IN_PROGRESS", logs="1")
    first = len(running.json()["logs"])
    time.sleep(0.4)
    later = client.get(submitted["status_url"], params={"logs": "1"}).json()
    assert later["status"] == "IN_PROGRESS"
    assert len(later["logs"]) > first


def test_request_ids_are_scoped_to_owner_app_whatever_the_subpath(client: httpx.Client) -> None:
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))
    request_id = submitted["request_id"]

    with_subpath = client.get(f"/fal-ai/flux-lora/inpainting/requests/{request_id}/status")
    other_app = client.get(f"/fal-ai/flux-general/requests/{request_id}/status")
    own_app = client.get(f"/fal-ai/flux-lora/requests/{request_id}/status")

    assert with_subpath.status_code == 404
    assert other_app.status_code == 404
    assert own_app.status_code in (200, 202)
    assert own_app.json()["request_id"] == request_id


def test_result_carries_request_id_header(client: httpx.Client) -> None:
    submitted = submit(client, KONTEXT, valid_body(KONTEXT))
    wait_status(client, submitted["status_url"])

    result = client.get(submitted["response_url"])

    assert result.status_code == 200
    assert result.headers["x-fal-request-id"] == submitted["request_id"]


def test_result_before_completion_is_a_fal_error(client: httpx.Client, knobs: SetKnobs) -> None:
    knobs(queue_delay=1.0)
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))

    early = client.get(submitted["response_url"])

    assert early.status_code == 400
    assert early.json() == {
        "detail": "Request is still in progress",
        "error_type": "request_in_progress",
    }


def test_unknown_request_and_unknown_endpoint_are_404_in_fal_shape(client: httpx.Client) -> None:
    missing = client.get("/fal-ai/flux-lora/requests/00000000-0000-0000-0000-000000000000/status")
    unknown_app = client.post("/fal-ai/not-a-model", json={"prompt": "x"})

    assert missing.status_code == 404
    assert missing.json()["detail"] == "Request not found"
    assert unknown_app.status_code == 404
    assert unknown_app.json()["error_type"] == "application_not_found"
    assert unknown_app.headers["x-fal-error-type"] == "application_not_found"


def test_cancel_queued_job_removes_it_and_it_ends_completed_with_cancel_error(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(queue_delay=5.0)
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))

    cancelled = client.put(submitted["cancel_url"])

    assert cancelled.status_code == 200
    assert cancelled.json() == {"status": "OK"}
    status = client.get(submitted["status_url"])
    assert status.status_code == 200
    assert status.json()["status"] == "COMPLETED"
    assert status.json()["error_type"] == "request_cancelled"
    result = client.get(submitted["response_url"])
    assert result.status_code == 400
    assert result.json()["error_type"] == "request_cancelled"


def test_cancel_running_job_requests_cancellation_and_it_stops(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(run_time=30.0)
    submitted = submit(client, GENERAL_INPAINTING, valid_body(GENERAL_INPAINTING))
    wait_status(client, submitted["status_url"], "IN_PROGRESS")

    cancelled = client.put(submitted["cancel_url"])

    assert cancelled.status_code == 202
    assert cancelled.json() == {"status": "CANCELLATION_REQUESTED"}
    done = wait_status(client, submitted["status_url"], timeout=5)
    assert done.json()["error_type"] == "request_cancelled"


def test_cancel_completed_and_unknown_jobs(client: httpx.Client) -> None:
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))
    wait_status(client, submitted["status_url"])

    late = client.put(submitted["cancel_url"])
    unknown = client.put("/fal-ai/flux-lora/requests/00000000-0000-0000-0000-000000000000/cancel")

    assert late.status_code == 400
    assert late.json()["status"] == "ALREADY_COMPLETED"
    assert unknown.status_code == 404
    assert client.get(submitted["response_url"]).status_code == 200


def test_start_timeout_header_fails_jobs_that_wait_too_long(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(queue_delay=1.5)
    response = client.post(
        f"/{INPAINTING}", json=valid_body(INPAINTING), headers={"X-Fal-Request-Timeout": "1"}
    )
    submitted = response.json()
    wait_status(client, submitted["status_url"], timeout=10)

    result = client.get(submitted["response_url"])

    assert result.status_code == 504
    assert result.json()["error_type"] == "request_timeout"
    assert result.headers["x-fal-request-timeout-type"] == "user"


def test_queue_positions_are_real_with_one_runner() -> None:
    with (
        Emulator({"runners": 1, "queue_delay": 0, "run_time": 2.0}) as single,
        single.client() as client,
    ):
        jobs = [submit(client, INPAINTING, valid_body(INPAINTING)) for _ in range(3)]
        wait_status(client, jobs[0]["status_url"], "IN_PROGRESS")

        second = client.get(jobs[1]["status_url"]).json()
        third = client.get(jobs[2]["status_url"]).json()

        assert second["status"] == "IN_QUEUE"
        assert second["queue_position"] == 0
        assert third["queue_position"] == 1
        client.put(jobs[0]["cancel_url"])
        wait_status(client, jobs[1]["status_url"], "IN_PROGRESS")
        assert client.get(jobs[2]["status_url"]).json()["queue_position"] == 0


def test_results_expire_after_retention() -> None:
    with (
        Emulator({"result_retention": 2.0, "queue_delay": 0, "run_time": 0}) as short,
        short.client() as client,
    ):
        submitted = submit(client, INPAINTING, valid_body(INPAINTING))
        wait_status(client, submitted["status_url"])
        image_url = client.get(submitted["response_url"]).json()["images"][0]["url"]
        assert client.get(image_url).status_code == 200

        time.sleep(2.5)

        assert client.get(submitted["status_url"]).status_code == 404
        assert client.get(submitted["response_url"]).status_code == 404
        assert client.get(image_url).status_code == 404
