"""The status stream: server-sent events that end after COMPLETED."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, KONTEXT, submit, valid_body


def _events(client: httpx.Client, url: str, logs: str = "0") -> tuple[str, list[dict[str, Any]]]:
    with connect_sse(client, "GET", url, params={"logs": logs}) as source:
        content_type = source.response.headers["content-type"]
        events = [json.loads(event.data) for event in source.iter_sse() if event.data]
    return content_type, events


def test_stream_reports_each_state_and_closes_after_completed(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(queue_delay=0.3, run_time=0.5, log_interval=0.1)
    submitted = submit(client, INPAINTING, valid_body(INPAINTING))

    content_type, events = _events(client, f"{submitted['status_url']}/stream")

    assert content_type.startswith("text/event-stream")
    states = [event["status"] for event in events]
    assert states[0] == "IN_QUEUE"
    assert "IN_PROGRESS" in states
    assert states[-1] == "COMPLETED"
    assert states.count("COMPLETED") == 1
    assert all(event["request_id"] == submitted["request_id"] for event in events)
    assert all("queue_position" in event and "logs" in event for event in events)


def test_stream_with_logs_sends_each_line_once(client: httpx.Client, knobs: SetKnobs) -> None:
    knobs(run_time=0.5, log_interval=0.1)
    submitted = submit(client, KONTEXT, valid_body(KONTEXT))

    _, events = _events(client, f"{submitted['status_url']}/stream", logs="1")

    streamed = [line for event in events for line in (event["logs"] or [])]
    final = client.get(submitted["status_url"], params={"logs": "1"}).json()["logs"]
    assert streamed == final
    assert len(streamed) >= 3


def test_stream_of_a_completed_job_sends_one_event(client: httpx.Client, knobs: SetKnobs) -> None:
    knobs(queue_delay=0, run_time=0)
    submitted = submit(client, KONTEXT, valid_body(KONTEXT))
    client.get(submitted["status_url"])
    with connect_sse(client, "GET", f"{submitted['status_url']}/stream") as source:
        for event in source.iter_sse():
            if json.loads(event.data)["status"] == "COMPLETED":
                break
    _, events = _events(client, f"{submitted['status_url']}/stream")
    assert [event["status"] for event in events] == ["COMPLETED"]


def test_stream_of_unknown_request_is_404(client: httpx.Client) -> None:
    response = client.get("/fal-ai/flux-lora/requests/unknown/status/stream")
    assert response.status_code == 404
    assert response.json()["detail"] == "Request not found"
