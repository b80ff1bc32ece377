"""Valid bodies are forwarded with every default explicit, nothing unknown, and priced exactly."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.jobs import (
    GENERAL_INPAINTING,
    IMAGE_TO_IMAGE,
    INPAINTING,
    KONTEXT,
    valid_body,
    wait_status,
)
from tests.servers import Emulator, UpstreamLog

COMMON_DEFAULTS = {"num_images": 1, "enable_safety_checker": True, "sync_mode": False, "loras": []}
EXPECTED_DEFAULTS: dict[str, dict[str, Any]] = {
    INPAINTING: {
        **COMMON_DEFAULTS,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "output_format": "jpeg",
        "acceleration": "none",
        "strength": 0.85,
    },
    IMAGE_TO_IMAGE: {
        **COMMON_DEFAULTS,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "output_format": "jpeg",
        "acceleration": "none",
        "strength": 0.85,
    },
    GENERAL_INPAINTING: {
        **COMMON_DEFAULTS,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "real_cfg_scale": 3.5,
        "output_format": "png",
        "strength": 0.85,
        "controlnets": [],
        "controlnet_unions": [],
        "ip_adapters": [],
        "control_loras": [],
        "easycontrols": [],
        "reference_strength": 0.65,
        "base_shift": 0.5,
        "max_shift": 1.15,
        "scheduler": "euler",
        "negative_prompt": "",
        "nag_scale": 3.0,
        "nag_tau": 2.5,
        "nag_alpha": 0.25,
        "nag_end": 0.25,
        "reference_start": 0.0,
        "reference_end": 1.0,
        "use_real_cfg": False,
        "use_cfg_zero": False,
        "use_beta_schedule": False,
    },
    KONTEXT: {
        **COMMON_DEFAULTS,
        "num_inference_steps": 30,
        "guidance_scale": 2.5,
        "output_format": "png",
        "acceleration": "none",
        "resolution_mode": "match_input",
    },
}
# ceil(64 * 48 * price per megapixel / 1e6): the 64x48 inline input decides the output size.
EXPECTED_COST = {INPAINTING: 108, IMAGE_TO_IMAGE: 108, GENERAL_INPAINTING: 231, KONTEXT: 108}


@pytest.mark.parametrize("endpoint", list(EXPECTED_DEFAULTS))
def test_valid_body_is_forwarded_with_explicit_defaults_and_priced(
    caller: httpx.Client, emulator: Emulator, endpoint: str
) -> None:
    sent = valid_body(endpoint)
    upstream = UpstreamLog(emulator)

    response = caller.post(f"/{endpoint}", json=sent)

    assert response.status_code == 200, response.text
    [forwarded] = upstream.submits()
    assert forwarded["path"] == f"/{endpoint}"
    body = json.loads(str(forwarded["body"]))
    assert body == {**sent, **EXPECTED_DEFAULTS[endpoint]}
    assert None not in body.values()
    assert int(response.headers["x-gateway-estimated-cost-micros"]) == EXPECTED_COST[endpoint]
    assert "x-gateway-ignored-fields" not in response.headers
    # What fal produced is what was priced.
    wait_status(caller, response.json()["status_url"])
    image = caller.get(response.json()["response_url"]).json()["images"][0]
    assert (image["width"], image["height"]) == (64, 48)


def test_stated_sizes_and_image_counts_are_priced(caller: httpx.Client, emulator: Emulator) -> None:
    sent = valid_body(IMAGE_TO_IMAGE, image_size="square_hd", num_images=2)
    upstream = UpstreamLog(emulator)
    response = caller.post(f"/{IMAGE_TO_IMAGE}", json=sent)
    # 1024 * 1024 * 35000 / 1e6 = 36700.16 → 36701 per image, two images.
    assert int(response.headers["x-gateway-estimated-cost-micros"]) == 2 * 36701
    body = json.loads(str(upstream.submits()[0]["body"]))
    assert (body["image_size"], body["num_images"]) == ("square_hd", 2)


def test_unknown_fields_are_dropped_and_reported(caller: httpx.Client, emulator: Emulator) -> None:
    sent = valid_body(
        GENERAL_INPAINTING,
        colour_grading="teal",
        couleur_préférée="bleu",
        loras=[{"path": "https://example.com/a.safetensors", "scale": 0.5, "force": True}],
        fill_image={"fill_image_url": valid_body(KONTEXT)["image_url"], "glow": 1},
    )
    upstream = UpstreamLog(emulator)
    response = caller.post(f"/{GENERAL_INPAINTING}", json=sent)

    assert response.status_code == 200, response.text
    assert (
        response.headers["x-gateway-ignored-fields"]
        == "colour_grading,couleur_pr%C3%A9f%C3%A9r%C3%A9e,loras.0.force,fill_image.glow"
    )
    body = json.loads(str(upstream.submits()[0]["body"]))
    assert "colour_grading" not in body
    assert body["loras"] == [{"path": "https://example.com/a.safetensors", "scale": 0.5}]
    assert "glow" not in body["fill_image"]


def test_many_unknown_fields_are_counted_and_the_first_listed(caller: httpx.Client) -> None:
    sent = valid_body(KONTEXT, **{f"extra_{i}_{'x' * 300}": i for i in range(5000)})
    response = caller.post(f"/{KONTEXT}", json=sent)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-ignored-fields-count"] == "5000"
    listed = response.headers["x-gateway-ignored-fields"].split(",")
    assert len(listed) == 50
    assert all(len(name) == 128 and name.startswith("extra_") for name in listed)
