"""The status stream is relayed event by event, with URLs rewritten."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, submit, valid_body
from tests.servers import Emulator, Gateway

pytestmark = pytest.mark.on_cluster


def test_stream_relays_events_as_they_arrive_until_completed(
    caller: httpx.Client, gateway: Gateway, emulator: Emulator, knobs: SetKnobs
) -> None:
    knobs(queue_delay=0.3, run_time=1.0, log_interval=0.1)
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
    events: list[dict[str, Any]] = []
    state_when_first_event_arrived = None
    with connect_sse(
        caller, "GET", f"{submitted['status_url']}/stream", params={"logs": "1"}
    ) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for event in source.iter_sse():
            if not event.data:
                continue
            if not events:
                state_when_first_event_arrived = caller.get(submitted["status_url"]).json()[
                    "status"
                ]
            events.append(json.loads(event.data))

    # Relayed, not buffered: the first event reached us while the job was still going.
    assert state_when_first_event_arrived in ("IN_QUEUE", "IN_PROGRESS")
    assert [e["status"] for e in events][-1] == "COMPLETED"
    assert "IN_PROGRESS" in [e["status"] for e in events]
    for status in events:
        assert status["status_url"] == submitted["status_url"]
        assert f":{emulator.port}" not in json.dumps(status)
    assert sum(len(e["logs"] or []) for e in events) >= 3
