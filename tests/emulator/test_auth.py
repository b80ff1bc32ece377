"""The emulator's key check."""

from __future__ import annotations

import httpx
import pytest

from tests.jobs import INPAINTING, valid_body
from tests.servers import Emulator


@pytest.mark.parametrize("scheme", ["Key", "Bearer", "key", "BEARER"])
def test_key_and_bearer_schemes_are_accepted(emulator: Emulator, scheme: str) -> None:
    response = httpx.post(
        f"{emulator.url}/{INPAINTING}",
        json=valid_body(INPAINTING),
        headers={"Authorization": f"{scheme} {Emulator.KEY}"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Key",
        "Key  x-",
        f"Basic {Emulator.KEY}",
        "Key wrong-key",
        f"Bearer {Emulator.KEY}x",
    ],
)
def test_missing_malformed_or_unknown_keys_get_401_in_fal_shape(
    emulator: Emulator, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    for response in (
        httpx.post(f"{emulator.url}/{INPAINTING}", json=valid_body(INPAINTING), headers=headers),
        httpx.get(f"{emulator.url}/fal-ai/flux-lora/requests/abc/status", headers=headers),
        httpx.post(f"{emulator.url}/storage/upload/initiate", json={}, headers=headers),
    ):
        assert response.status_code == 401
        body = response.json()
        assert set(body) == {"detail", "error_type"}
        assert body["error_type"] == "unauthorized"
        assert Emulator.KEY not in response.text


def test_any_non_empty_key_is_accepted_when_no_keys_are_configured() -> None:
    with Emulator({"keys": ""}) as open_emulator, open_emulator.client("whatever") as client:
        submitted = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
        assert submitted.status_code == 200
        with open_emulator.client(None) as anonymous:
            assert anonymous.post(f"/{INPAINTING}", json=valid_body(INPAINTING)).status_code == 401
        # Each key is still its own account: another key cannot see this request.
        with open_emulator.client("another") as other:
            assert other.get(submitted.json()["status_url"]).status_code == 404


def test_several_keys_can_be_configured() -> None:
    with Emulator({"keys": "first, second"}) as emulator:
        for key, expected in (("first", 200), ("second", 200), ("third", 401)):
            with emulator.client(key) as client:
                response = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING))
                assert response.status_code == expected
