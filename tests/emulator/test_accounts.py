"""Each key is a fal account: it owns its requests, has a concurrency limit and can be locked."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Emulator

KEY_A, KEY_B, KEY_C = "account-a-key", "account-b-key", "account-c-key"
LOCKED = {
    "detail": "User is locked. Reason: Exhausted balance. "
    "Top up your balance at fal.ai/dashboard/billing."
}
NOT_FOUND = {"detail": "Request not found", "error_type": "not_found"}


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def accounts() -> Iterator[Emulator]:
    """Three accounts' keys; C's account is locked from the start."""
    settings = {
        "keys": f"{KEY_A},{KEY_B},{KEY_C}",
        "locked_keys": _fingerprint(KEY_C),
        "runners": 3,
        "queue_delay": 0,
        "run_time": 0.3,
        "log_interval": 0.1,
    }
    with Emulator(settings) as running:
        yield running


@pytest.fixture
def a(accounts: Emulator) -> Iterator[httpx.Client]:
    """Account A's client; the knobs it changes are restored after the test."""
    with accounts.client(KEY_A) as client:
        before = client.get("/_emulator/knobs").json()
        yield client
        client.patch("/_emulator/knobs", json=before).raise_for_status()


@pytest.fixture
def b(accounts: Emulator) -> Iterator[httpx.Client]:
    with accounts.client(KEY_B) as client:
        yield client


def _knobs(client: httpx.Client, **changes: Any) -> dict[str, Any]:
    response = client.patch("/_emulator/knobs", json=changes)
    response.raise_for_status()
    knobs: dict[str, Any] = response.json()
    return knobs


def _stream(client: httpx.Client, status_url: str) -> tuple[int, list[str]]:
    with connect_sse(client, "GET", f"{status_url}/stream") as source:
        if source.response.status_code != 200:
            source.response.read()
            assert source.response.json() == NOT_FOUND
            return source.response.status_code, []
        states = [json.loads(event.data)["status"] for event in source.iter_sse() if event.data]
    return 200, states


def _state(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = client.get(job["status_url"]).json()
    return status


def test_a_request_is_found_only_with_the_key_that_submitted_it(
    a: httpx.Client, b: httpx.Client
) -> None:
    job = submit(a, INPAINTING, valid_body(INPAINTING))

    for response in (
        b.get(job["status_url"]),
        b.get(job["response_url"]),
        b.put(job["cancel_url"]),
    ):
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    assert _stream(b, job["status_url"]) == (404, [])

    assert _stream(a, job["status_url"])[1][-1] == "COMPLETED"
    assert a.get(job["status_url"]).status_code == 200
    assert a.get(job["response_url"]).status_code == 200
    assert a.put(job["cancel_url"]).json() == {
        "status": "ALREADY_COMPLETED",
        "detail": "Request already completed",
    }


def test_another_keys_cancel_leaves_a_queued_request_alone(
    a: httpx.Client, b: httpx.Client
) -> None:
    _knobs(a, queue_delay=5.0)
    job = submit(a, INPAINTING, valid_body(INPAINTING))

    assert b.put(job["cancel_url"]).status_code == 404
    assert _state(a, job)["status"] == "IN_QUEUE"
    cancelled = a.put(job["cancel_url"])

    assert cancelled.status_code == 200
    assert cancelled.json() == {"status": "OK"}


def test_a_key_at_its_concurrency_limit_waits_without_holding_up_other_keys(
    a: httpx.Client, b: httpx.Client
) -> None:
    _knobs(a, key_concurrency=1, run_time=30.0)
    first = submit(a, INPAINTING, valid_body(INPAINTING))
    second = submit(a, INPAINTING, valid_body(INPAINTING))
    other = submit(b, INPAINTING, valid_body(INPAINTING))
    try:
        wait_status(a, first["status_url"], "IN_PROGRESS")
        wait_status(b, other["status_url"], "IN_PROGRESS")
        waiting = _state(a, second)
        assert waiting["status"] == "IN_QUEUE"
        assert waiting["queue_position"] == 0

        a.put(first["cancel_url"])
        wait_status(a, second["status_url"], "IN_PROGRESS")
    finally:
        for client, job in ((a, first), (a, second), (b, other)):
            client.put(job["cancel_url"])


def test_raising_the_limit_starts_a_waiting_job_at_once(a: httpx.Client, b: httpx.Client) -> None:
    _knobs(a, key_concurrency=1, run_time=30.0)
    jobs = [submit(a, INPAINTING, valid_body(INPAINTING)) for _ in range(2)]
    try:
        wait_status(a, jobs[0]["status_url"], "IN_PROGRESS")
        assert _state(a, jobs[1])["status"] == "IN_QUEUE"

        _knobs(a, key_concurrency=2)

        wait_status(a, jobs[1]["status_url"], "IN_PROGRESS")
    finally:
        for job in jobs:
            a.put(job["cancel_url"])


def test_sync_runs_count_against_their_keys_limit(a: httpx.Client) -> None:
    _knobs(a, key_concurrency=1, run_time=30.0)
    running = submit(a, INPAINTING, valid_body(INPAINTING))
    wait_status(a, running["status_url"], "IN_PROGRESS")
    _knobs(a, run_time=0)
    answers: list[int] = []
    sync = threading.Thread(
        target=lambda: answers.append(
            a.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT)).status_code
        )
    )
    sync.start()

    sync.join(timeout=1.5)
    assert sync.is_alive(), "the sync run should wait for the key's running job"
    a.put(running["cancel_url"])
    sync.join(timeout=20)

    assert answers == [200]


def test_a_locked_account_cannot_spend_but_can_read(
    accounts: Emulator, a: httpx.Client, b: httpx.Client
) -> None:
    earlier = submit(a, INPAINTING, valid_body(INPAINTING))
    wait_status(a, earlier["status_url"])
    fingerprint = _fingerprint(KEY_A)
    seen = a.get("/_emulator/requests").json()["requests"][-1]["key_fingerprint"]
    assert seen == fingerprint

    knobs = _knobs(a, locked_keys=[fingerprint])

    assert knobs["locked_keys"] == [fingerprint]
    for response in (
        a.post(f"/{INPAINTING}", json=valid_body(INPAINTING)),
        a.post(f"/sync/{KONTEXT}", json=valid_body(KONTEXT)),
        a.post(
            "/storage/upload/initiate", json={"file_name": "a.png", "content_type": "image/png"}
        ),
    ):
        assert response.status_code == 403
        assert response.json() == LOCKED
    assert a.get(earlier["status_url"]).status_code == 200
    assert a.get(earlier["response_url"]).status_code == 200
    assert _stream(a, earlier["status_url"]) == (200, ["COMPLETED"])
    assert a.put(earlier["cancel_url"]).status_code == 400
    assert b.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 200
    assert b.post("/storage/upload/initiate", json={}).status_code == 200

    _knobs(a, locked_keys=[])

    assert a.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 200


def test_locked_keys_can_be_set_at_start(accounts: Emulator) -> None:
    with accounts.client(KEY_C) as c:
        assert c.get("/_emulator/knobs").json()["locked_keys"] == [_fingerprint(KEY_C)]
        response = c.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
        assert response.status_code == 403
        assert response.json() == LOCKED


@pytest.mark.parametrize(
    "bad",
    [{"locked_keys": ["not-a-fingerprint"]}, {"locked_keys": [KEY_A]}, {"key_concurrency": -1}],
)
def test_bad_account_knobs_are_refused(a: httpx.Client, bad: dict[str, Any]) -> None:
    response = a.patch("/_emulator/knobs", json=bad)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", next(iter(bad))]
