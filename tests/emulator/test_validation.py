"""Input validation: fal's 422 ``detail`` list, per endpoint, before any work is queued."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.jobs import (
    ALL_ENDPOINTS,
    GENERAL_INPAINTING,
    IMAGE_TO_IMAGE,
    INPAINTING,
    KONTEXT,
    valid_body,
)


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail: list[dict[str, Any]] = response.json()["detail"]
    for item in detail:
        assert {"loc", "msg", "type"} <= set(item)
        assert item["loc"][0] == "body"
    return detail


def _locs(response: httpx.Response) -> set[tuple[str, ...]]:
    return {tuple(str(p) for p in item["loc"]) for item in _errors(response)}


def _queued_count(client: httpx.Client) -> int:
    log = client.get("/_emulator/requests").json()["requests"]
    return sum(1 for entry in log if entry["method"] == "POST" and entry["status"] == 200)


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS)
@pytest.mark.parametrize("field", ["prompt", "image_url"])
def test_required_fields(client: httpx.Client, endpoint: str, field: str) -> None:
    body = valid_body(endpoint)
    del body[field]
    errors = _errors(client.post(f"/{endpoint}", json=body))
    assert {"loc": ["body", field], "msg": "Field required", "type": "missing"} in errors


@pytest.mark.parametrize("endpoint", [INPAINTING, GENERAL_INPAINTING])
def test_inpainting_needs_a_mask(client: httpx.Client, endpoint: str) -> None:
    body = valid_body(endpoint)
    del body["mask_url"]
    assert ("body", "mask_url") in _locs(client.post(f"/{endpoint}", json=body))


@pytest.mark.parametrize(
    ("endpoint", "field", "value", "error_type"),
    [
        (INPAINTING, "num_inference_steps", 0, "greater_than_equal"),
        (INPAINTING, "num_inference_steps", 51, "less_than_equal"),
        (INPAINTING, "guidance_scale", 35.5, "less_than_equal"),
        (INPAINTING, "num_images", 5, "less_than_equal"),
        (INPAINTING, "strength", 0.0, "greater_than_equal"),
        (INPAINTING, "output_format", "webp", "literal_error"),
        (INPAINTING, "acceleration", "high", "literal_error"),
        (IMAGE_TO_IMAGE, "strength", 1.5, "less_than_equal"),
        (IMAGE_TO_IMAGE, "num_inference_steps", "many", "int_parsing"),
        (IMAGE_TO_IMAGE, "enable_safety_checker", "perhaps", "bool_parsing"),
        (GENERAL_INPAINTING, "num_images", 11, "less_than_equal"),
        (GENERAL_INPAINTING, "guidance_scale", 21, "less_than_equal"),
        (GENERAL_INPAINTING, "real_cfg_scale", 6, "less_than_equal"),
        (GENERAL_INPAINTING, "reference_strength", -4, "greater_than_equal"),
        (GENERAL_INPAINTING, "scheduler", "ddim", "literal_error"),
        (GENERAL_INPAINTING, "nag_scale", 1, "greater_than_equal"),
        (KONTEXT, "num_inference_steps", 9, "greater_than_equal"),
        (KONTEXT, "acceleration", "turbo", "literal_error"),
        (KONTEXT, "resolution_mode", "7:3", "literal_error"),
        (KONTEXT, "num_images", 0, "greater_than_equal"),
        (KONTEXT, "prompt", 42, "string_type"),
    ],
)
def test_out_of_range_wrong_type_and_bad_enum(
    client: httpx.Client, endpoint: str, field: str, value: object, error_type: str
) -> None:
    before = _queued_count(client)
    errors = _errors(client.post(f"/{endpoint}", json={**valid_body(endpoint), field: value}))

    assert [e["type"] for e in errors if e["loc"] == ["body", field]] == [error_type]
    assert _queued_count(client) == before


@pytest.mark.parametrize(
    ("image_size", "loc"),
    [
        ("huge", ("body", "image_size", "preset")),
        ({"width": 0, "height": 512}, ("body", "image_size", "custom", "width")),
        ({"width": 512, "height": 14143}, ("body", "image_size", "custom", "height")),
    ],
)
def test_image_size_presets_and_custom_sizes(
    client: httpx.Client, image_size: object, loc: tuple[str, ...]
) -> None:
    response = client.post(f"/{INPAINTING}", json=valid_body(INPAINTING, image_size=image_size))
    assert loc in _locs(response)


def test_nested_lists_are_validated(client: httpx.Client) -> None:
    body = valid_body(
        GENERAL_INPAINTING,
        loras=[{"scale": 1}],
        controlnets=[
            {"path": "a", "control_image_url": "b"},
            {"path": "c", "control_image_url": "d"},
        ],
        controlnet_unions=[
            {"path": "u", "controls": [{"control_image_url": "x", "control_mode": "edges"}]}
        ],
        ip_adapters=[{"path": "p", "image_encoder_path": "e", "image_url": "i"}],
        control_loras=[{"path": "p", "control_image_url": "c", "preprocess": "sketch"}],
    )
    locs = _locs(client.post(f"/{GENERAL_INPAINTING}", json=body))
    assert ("body", "loras", "0", "path") in locs
    assert ("body", "controlnets") in locs
    assert ("body", "controlnet_unions", "0", "controls", "0", "control_mode") in locs
    assert ("body", "ip_adapters", "0", "scale") in locs
    assert ("body", "control_loras", "0", "preprocess") in locs


def test_per_layer_lora_scales_are_accepted_on_flux_general(client: httpx.Client) -> None:
    body = valid_body(
        GENERAL_INPAINTING, loras=[{"path": "https://x/l.safetensors", "scale": {"a": 0.5}}]
    )
    assert client.post(f"/{GENERAL_INPAINTING}", json=body).status_code == 200


def test_unknown_fields_are_ignored_as_fal_does(client: httpx.Client) -> None:
    body = valid_body(KONTEXT, colour_grading="teal-orange")
    assert client.post(f"/{KONTEXT}", json=body).status_code == 200


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_bodies_that_are_not_json_objects(client: httpx.Client, raw: bytes) -> None:
    response = client.post(
        f"/{INPAINTING}", content=raw, headers={"Content-Type": "application/json"}
    )
    assert _locs(response) == {("body",)}
