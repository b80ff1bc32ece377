"""Helpers to drive fal's queue protocol from tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.images import data_uri, mask_left_half, png

INPAINTING = "fal-ai/flux-lora/inpainting"
GENERAL_INPAINTING = "fal-ai/flux-general/inpainting"
IMAGE_TO_IMAGE = "fal-ai/flux-lora/image-to-image"
KONTEXT = "fal-ai/flux-kontext-lora"
ALL_ENDPOINTS = (INPAINTING, GENERAL_INPAINTING, IMAGE_TO_IMAGE, KONTEXT)


def valid_body(endpoint: str, width: int = 64, height: int = 48, **extra: Any) -> dict[str, Any]:
    """A minimal valid input for ``endpoint`` with inline images of the given size."""
    body: dict[str, Any] = {"prompt": "a red fox", "image_url": data_uri(png(width, height))}
    if endpoint.endswith("inpainting"):
        body["mask_url"] = data_uri(mask_left_half(width, height))
    return {**body, **extra}


def wait_status(
    client: httpx.Client,
    status_url: str,
    state: str = "COMPLETED",
    timeout: float = 20.0,
    **params: Any,
) -> httpx.Response:
    """Poll ``status_url`` until the job reaches ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url, params=params)
        response.raise_for_status()
        if response.json()["status"] == state:
            return response
        time.sleep(0.02)
    raise AssertionError(f"{status_url} did not reach {state} in {timeout}s")


def submit(
    client: httpx.Client, endpoint: str, body: dict[str, Any], **params: str
) -> dict[str, Any]:
    response = client.post(f"/{endpoint}", json=body, params=params)
    assert response.status_code == 200, response.text
    submitted: dict[str, Any] = response.json()
    return submitted


def run(client: httpx.Client, endpoint: str, body: dict[str, Any]) -> httpx.Response:
    """Submit, wait for completion and return the result response."""
    submitted = submit(client, endpoint, body)
    wait_status(client, submitted["status_url"])
    return client.get(submitted["response_url"])
