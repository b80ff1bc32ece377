"""Output images: real PNG/JPEG of the implied size, deterministic, masks kept, inputs fetched."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from PIL import ImageChops

from tests.images import CRAFTED_HEADERS, data_uri, decode, mask_left_half, png
from tests.jobs import GENERAL_INPAINTING, IMAGE_TO_IMAGE, INPAINTING, KONTEXT, run, valid_body
from tests.peer import Peer


def _output(client: httpx.Client, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    result = run(client, endpoint, body)
    assert result.status_code == 200, result.text
    output: dict[str, Any] = result.json()
    return output


def _download(client: httpx.Client, image: dict[str, Any]) -> bytes:
    response = client.get(image["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == image["content_type"]
    return response.content


@pytest.mark.parametrize(
    ("output_format", "pil_format", "content_type"),
    [("png", "PNG", "image/png"), ("jpeg", "JPEG", "image/jpeg")],
)
def test_output_format_gives_real_images(
    client: httpx.Client, output_format: str, pil_format: str, content_type: str
) -> None:
    output = _output(
        client, IMAGE_TO_IMAGE, valid_body(IMAGE_TO_IMAGE, output_format=output_format)
    )
    image = output["images"][0]
    assert image["content_type"] == content_type
    decoded = decode(_download(client, image))
    assert decoded.format == pil_format
    assert decoded.size == (image["width"], image["height"]) == (64, 48)


@pytest.mark.parametrize(
    ("endpoint", "extra", "size"),
    [
        (INPAINTING, {}, (64, 48)),
        (IMAGE_TO_IMAGE, {"image_size": "square"}, (512, 512)),
        (IMAGE_TO_IMAGE, {"image_size": "portrait_16_9"}, (576, 1024)),
        (GENERAL_INPAINTING, {"image_size": {"width": 96, "height": 80}}, (96, 80)),
        (KONTEXT, {}, (64, 48)),
        (KONTEXT, {"resolution_mode": "auto"}, (1184, 880)),  # 4:3 input; 1184x880 is closest
        (KONTEXT, {"resolution_mode": "1:1"}, (1024, 1024)),
    ],
)
def test_output_size_follows_the_request(
    client: httpx.Client, endpoint: str, extra: dict[str, Any], size: tuple[int, int]
) -> None:
    output = _output(client, endpoint, valid_body(endpoint, **extra))
    image = output["images"][0]
    assert (image["width"], image["height"]) == size
    assert decode(_download(client, image)).size == size


def test_kontext_match_input_rounds_to_multiples_of_16(client: httpx.Client) -> None:
    output = _output(client, KONTEXT, valid_body(KONTEXT, width=70, height=41))
    image = output["images"][0]
    assert (image["width"], image["height"]) == (64, 48)


def test_num_images_gives_distinct_images(client: httpx.Client) -> None:
    output = _output(
        client, INPAINTING, valid_body(INPAINTING, num_images=3, seed=5, output_format="png")
    )
    contents = [_download(client, image) for image in output["images"]]
    assert len(contents) == 3
    assert len(set(contents)) == 3
    assert output["has_nsfw_concepts"] == [False, False, False]


@pytest.mark.parametrize("endpoint", [INPAINTING, GENERAL_INPAINTING])
def test_inpainting_changes_only_masked_pixels(client: httpx.Client, endpoint: str) -> None:
    source = png(64, 48)
    body = valid_body(endpoint, output_format="png", seed=11)
    body["image_url"] = data_uri(source)
    body["mask_url"] = data_uri(mask_left_half(64, 48))
    output = decode(_download(client, _output(client, endpoint, body)["images"][0])).convert("RGB")
    original = decode(source).convert("RGB")

    unmasked = (32, 0, 64, 48)
    masked = (0, 0, 32, 48)
    assert ImageChops.difference(output.crop(unmasked), original.crop(unmasked)).getbbox() is None
    assert ImageChops.difference(output.crop(masked), original.crop(masked)).getbbox() is not None


def test_same_seed_and_inputs_give_the_same_bytes(client: httpx.Client) -> None:
    body = valid_body(IMAGE_TO_IMAGE, seed=1234, output_format="png")
    first = _download(client, _output(client, IMAGE_TO_IMAGE, body)["images"][0])
    again = _download(client, _output(client, IMAGE_TO_IMAGE, body)["images"][0])
    other = _download(client, _output(client, IMAGE_TO_IMAGE, {**body, "seed": 4321})["images"][0])
    assert first == again
    assert first != other


def test_missing_seed_is_chosen_and_reported(client: httpx.Client) -> None:
    output = _output(client, KONTEXT, valid_body(KONTEXT))
    assert isinstance(output["seed"], int)


def test_sync_mode_returns_data_uris(client: httpx.Client) -> None:
    output = _output(client, KONTEXT, valid_body(KONTEXT, sync_mode=True, output_format="jpeg"))
    url = output["images"][0]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert decode(base64.b64decode(url.split(",", 1)[1])).format == "JPEG"


def test_inputs_are_fetched_over_http(client: httpx.Client, peer: Peer) -> None:
    body = valid_body(INPAINTING)
    body["image_url"] = peer.serve("source.png", png(80, 60))
    body["mask_url"] = peer.serve("mask.png", mask_left_half(80, 60))
    image = _output(client, INPAINTING, body)["images"][0]
    assert (image["width"], image["height"]) == (80, 60)


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("image_url", "http://127.0.0.1:9/nothing-listens-here.png", "file_download_error"),
        ("image_url", "ftp://example.invalid/a.png", "file_download_error"),
        ("image_url", "http://127.0.0.1:99999/a.png", "file_download_error"),
        ("image_url", "http://127.0.0.1:port/a.png", "file_download_error"),
        ("image_url", "data:image/png;base64,@@@", "file_download_error"),
        ("image_url", data_uri(b"not an image at all"), "image_load_error"),
        ("mask_url", data_uri(b"GIF89a broken"), "image_load_error"),
    ],
)
def test_unusable_inputs_fail_the_job_with_fal_error_shape(
    client: httpx.Client, field: str, value: str, error_type: str
) -> None:
    body = {**valid_body(INPAINTING), field: value}
    result = run(client, INPAINTING, body)
    assert result.status_code == 422
    [item] = result.json()["detail"]
    assert item["loc"] == ["body", field]
    assert item["type"] == error_type
    assert result.headers["x-fal-error-type"] == error_type


@pytest.mark.parametrize("crafted", sorted(CRAFTED_HEADERS))
def test_crafted_image_headers_fail_the_job_as_unreadable(
    client: httpx.Client, crafted: str
) -> None:
    body = valid_body(IMAGE_TO_IMAGE, image_url=data_uri(CRAFTED_HEADERS[crafted]))
    result = run(client, IMAGE_TO_IMAGE, body)
    assert result.status_code == 422
    assert result.json()["detail"][0]["type"] == "image_load_error"


def test_http_error_from_input_host_fails_the_job(client: httpx.Client, peer: Peer) -> None:
    body = valid_body(IMAGE_TO_IMAGE, image_url=f"{peer.url}/files/absent.png")
    result = run(client, IMAGE_TO_IMAGE, body)
    assert result.status_code == 422
    assert result.json()["detail"][0]["type"] == "file_download_error"
