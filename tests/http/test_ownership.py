"""A request belongs to the key that created it; anyone else is told it does not exist."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SetKnobs
from tests.jobs import INPAINTING, KONTEXT, submit, valid_body, wait_status
from tests.servers import Gateway

pytestmark = pytest.mark.on_cluster

NOT_FOUND = {"detail": "Request not found", "error_type": "not_found"}


@pytest.mark.parametrize("other_team", ["default", "other-team"])
def test_other_keys_get_404_for_status_result_stream_and_cancel(
    gateway: Gateway, caller: httpx.Client, knobs: SetKnobs, other_team: str
) -> None:
    knobs(queue_delay=0.5)
    submitted = submit(caller, INPAINTING, valid_body(INPAINTING))
    token, _ = gateway.new_key(team_id=other_team)
    with gateway.client(token) as stranger:
        for response in (
            stranger.get(submitted["status_url"]),
            stranger.get(f"{submitted['status_url']}/stream"),
            stranger.get(submitted["response_url"]),
            stranger.put(submitted["cancel_url"]),
        ):
            assert response.status_code == 404
            assert response.json() == NOT_FOUND
    # The stranger's cancel did nothing: the owner's job completes normally.
    wait_status(caller, submitted["status_url"])
    assert caller.get(submitted["response_url"]).status_code == 200


def test_request_ids_are_scoped_to_their_app(caller: httpx.Client) -> None:
    submitted = submit(caller, KONTEXT, valid_body(KONTEXT))
    other_app = caller.get(f"/fal-ai/flux-lora/requests/{submitted['request_id']}/status")
    assert other_app.status_code == 404
    assert other_app.json() == NOT_FOUND


def test_unknown_and_absurd_request_ids(caller: httpx.Client) -> None:
    for request_id in ("00000000-0000-0000-0000-000000000000", "x" * 500):
        response = caller.get(f"/fal-ai/flux-lora/requests/{request_id}/status")
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
