"""Status polls answered from the gateway's own state, and coalesced upstream calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from gateway.store import redis_keys
from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog

COALESCE_INTERVAL = 1.0


def _status_calls(log: UpstreamLog, request_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in log.requests()
        if r["method"] == "GET" and str(r["path"]).endswith(f"/requests/{request_id}/status")
    ]


def _known_to_gateway(redis_server: RedisServer, request_id: str, timeout: float = 20.0) -> None:
    """Wait until the gateway has recorded the request's final status."""
    name = redis_keys.request_record("default", request_id)
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(redis_server.url) as store:
        while time.monotonic() < deadline:
            if store.hexists(name, "final_status"):
                return
            time.sleep(0.02)
    raise AssertionError(f"the gateway never learnt that {request_id} finished")


def test_polls_after_the_webhook_are_answered_without_calling_fal(
    caller: httpx.Client, gateway: Gateway, emulator: Emulator, redis_server: RedisServer
) -> None:
    log = UpstreamLog(emulator)
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
    request_id = submitted["request_id"]
    _known_to_gateway(redis_server, request_id)  # from fal's webhook: nobody polled
    assert _status_calls(log, request_id) == []

    # As fal-client polls (``logs=0``) and as a bare URL.
    answers = [caller.get(submitted["status_url"], params={"logs": "0"}) for _ in range(25)]
    answers += [caller.get(submitted["status_url"]) for _ in range(25)]

    assert _status_calls(log, request_id) == []
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["x-fal-request-id"] == request_id
        assert answer.json() == {
            "status": "COMPLETED",
            "request_id": request_id,
            "response_url": submitted["response_url"],
            "status_url": submitted["status_url"],
            "cancel_url": submitted["cancel_url"],
            "logs": None,
            "metrics": {},
        }
    assert caller.get(submitted["response_url"]).status_code == 200


def test_a_finished_requests_stream_is_its_final_status(
    caller: httpx.Client, emulator: Emulator, redis_server: RedisServer
) -> None:
    submitted = submit(caller, KONTEXT, valid_body(KONTEXT))
    _known_to_gateway(redis_server, submitted["request_id"])
    log = UpstreamLog(emulator)

    with caller.stream("GET", f"{submitted['status_url']}/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())

    data = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert len(data) == 1
    assert '"status":"COMPLETED"' in data[0]
    assert log.requests() == []


def test_logs_of_a_finished_request_still_come_from_fal(
    caller: httpx.Client, emulator: Emulator, redis_server: RedisServer, knobs: SetKnobs
) -> None:
    knobs(run_time=0.3, log_interval=0.05)
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
    request_id = submitted["request_id"]
    _known_to_gateway(redis_server, request_id)
    log = UpstreamLog(emulator)

    answer = caller.get(submitted["status_url"], params={"logs": "1"})

    assert answer.status_code == 200
    assert answer.json()["logs"], "fal's logs are relayed"
    assert len(_status_calls(log, request_id)) == 1


def test_a_failed_request_is_answered_from_state_once_a_poll_saw_it(
    caller: httpx.Client, emulator: Emulator, redis_server: RedisServer, knobs: SetKnobs
) -> None:
    knobs(fail_job_rate=1.0)
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
    request_id = submitted["request_id"]
    seen = wait_status(caller, submitted["status_url"]).json()
    assert seen["error"]
    assert seen["error_type"]
    _known_to_gateway(redis_server, request_id)
    log = UpstreamLog(emulator)

    again = caller.get(submitted["status_url"])

    assert again.json() == seen
    assert _status_calls(log, request_id) == []


@pytest.fixture(scope="module")
def coalescing_gateway(redis_server: RedisServer, emulator: Emulator) -> Iterator[Gateway]:
    settings = {"status_coalesce_interval": COALESCE_INTERVAL}
    with Gateway(redis_server.url, emulator.url, settings) as running:
        yield running


def _poll_for(client: httpx.Client, url: str, seconds: float, pause: float) -> list[str]:
    states: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get(url)
        assert answer.status_code in (200, 202), answer.text
        states.append(answer.json()["status"])
        time.sleep(pause)
    return states


@pytest.mark.parametrize(("pollers", "pause"), [(1, 0.5), (6, 0.0)])
def test_upstream_status_calls_do_not_grow_with_the_poll_rate(
    coalescing_gateway: Gateway, emulator: Emulator, knobs: SetKnobs, pollers: int, pause: float
) -> None:
    knobs(queue_delay=30)
    token, _ = coalescing_gateway.new_key()
    with coalescing_gateway.client(token) as client:
        submitted = submit(client, INPAINTING, valid_body(INPAINTING))
        log = UpstreamLog(emulator)
        started = time.monotonic()
        polled: list[list[str]] = []
        threads = [
            threading.Thread(
                target=lambda: polled.append(_poll_for(client, submitted["status_url"], 3.0, pause))
            )
            for _ in range(pollers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        client.put(submitted["cancel_url"])

    polls = sum(len(states) for states in polled)
    calls = len(_status_calls(log, submitted["request_id"]))
    assert {state for states in polled for state in states} == {"IN_QUEUE"}
    assert 1 <= calls <= int(elapsed / COALESCE_INTERVAL) + 1
    if pollers > 1:
        assert polls > 10 * calls, "fast pollers share the calls"


def test_a_cancel_is_seen_by_the_next_poll(coalescing_gateway: Gateway, knobs: SetKnobs) -> None:
    knobs(queue_delay=30)
    token, _ = coalescing_gateway.new_key()
    with coalescing_gateway.client(token) as client:
        submitted = submit(client, KONTEXT, valid_body(KONTEXT))
        assert client.get(submitted["status_url"]).json()["status"] == "IN_QUEUE"
        assert client.put(submitted["cancel_url"]).json()["status"] == "OK"

        after = client.get(submitted["status_url"])

    assert after.json()["status"] == "COMPLETED"
