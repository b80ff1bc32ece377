"""Fault injection knobs: failing submits and failing jobs."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, run, valid_body
from tests.servers import Emulator


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fail_submit_rate_answers_5xx_in_fal_shape(
    client: httpx.Client, knobs: SetKnobs, status: int
) -> None:
    knobs(fail_submit_rate=1.0, fail_submit_status=status)

    response = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
    sync = client.post(f"/sync/{INPAINTING}", json=valid_body(INPAINTING))

    for answer in (response, sync):
        assert answer.status_code == status
        assert set(answer.json()) == {"detail", "error_type"}
        assert "x-fal-request-id" not in answer.headers


def test_fail_job_rate_ends_completed_with_500_result(
    client: httpx.Client, knobs: SetKnobs
) -> None:
    knobs(fail_job_rate=1.0)

    result = run(client, INPAINTING, valid_body(INPAINTING))

    assert result.status_code == 500
    assert result.json() == {
        "detail": "Internal server error",
        "error_type": "internal_server_error",
    }


def test_bad_knob_values_are_refused(client: httpx.Client) -> None:
    for bad in ({"fail_job_rate": 2}, {"fail_submit_status": 404}, {"runtime": 1}):
        response = client.patch("/_emulator/knobs", json=bad)
        assert response.status_code == 422
    assert client.get("/_emulator/knobs").json()["fail_job_rate"] == 0


def test_knobs_need_a_key(emulator: Emulator) -> None:
    response = httpx.patch(f"{emulator.url}/_emulator/knobs", json={"run_time": 9})
    assert response.status_code == 401
