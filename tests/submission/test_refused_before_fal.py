"""Bad input is refused by the gateway itself, in fal's shapes, with no call to fal."""

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.images import CRAFTED_HEADERS, data_uri, png
from tests.jobs import GENERAL_INPAINTING, IMAGE_TO_IMAGE, INPAINTING, KONTEXT, valid_body
from tests.servers import Emulator, Gateway, RedisServer, UpstreamLog


def _encoded(image_format: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, format=image_format)
    return buffer.getvalue()


def _refused(
    client: httpx.Client, emulator: Emulator, endpoint: str, body: Any, status: int = 422
) -> list[dict[str, Any]]:
    upstream = UpstreamLog(emulator)
    if isinstance(body, bytes):
        response = client.post(
            f"/{endpoint}", content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = client.post(f"/{endpoint}", json=body)
    assert response.status_code == status, response.text
    assert upstream.submits() == [], "the gateway called fal for a body it should refuse"
    detail = response.json()["detail"]
    if status == 422:
        assert all({"loc", "msg", "type"} <= set(item) for item in detail)
        return list(detail)
    assert isinstance(detail, str)
    return []


def _types_at(errors: list[dict[str, Any]], *loc: str | int) -> list[str]:
    return [e["type"] for e in errors if e["loc"] == ["body", *loc]]


@pytest.mark.parametrize(
    ("endpoint", "change", "loc", "error_type"),
    [
        (INPAINTING, {"prompt": None}, ("prompt",), "string_type"),
        (INPAINTING, {"num_images": "two"}, ("num_images",), "int_parsing"),
        (INPAINTING, {"num_inference_steps": 51}, ("num_inference_steps",), "less_than_equal"),
        (IMAGE_TO_IMAGE, {"strength": 0}, ("strength",), "greater_than_equal"),
        (KONTEXT, {"resolution_mode": "4:1"}, ("resolution_mode",), "literal_error"),
        (GENERAL_INPAINTING, {"scheduler": "ddim"}, ("scheduler",), "literal_error"),
    ],
)
def test_type_range_and_enum_errors(
    caller: httpx.Client,
    emulator: Emulator,
    endpoint: str,
    change: dict[str, Any],
    loc: tuple[str, ...],
    error_type: str,
) -> None:
    errors = _refused(caller, emulator, endpoint, {**valid_body(endpoint), **change})
    assert _types_at(errors, *loc) == [error_type]


def test_missing_required_field(caller: httpx.Client, emulator: Emulator) -> None:
    body = valid_body(INPAINTING)
    del body["mask_url"]
    assert _types_at(_refused(caller, emulator, INPAINTING, body), "mask_url") == ["missing"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "not a url",
        "http://",
        "https:///no-host.png",
        "http://exa mple.com/a.png",
        "//example.com/a.png",
        "",
    ],
)
def test_bad_urls(caller: httpx.Client, emulator: Emulator, url: str) -> None:
    errors = _refused(caller, emulator, INPAINTING, valid_body(INPAINTING, mask_url=url))
    assert _types_at(errors, "mask_url") == ["url_scheme"]


@pytest.mark.parametrize(
    ("uri", "error_type"),
    [
        ("data:image/png;base64,@@@not-base64", "invalid_data_uri"),
        ("data:image/png;base64", "invalid_data_uri"),
        (data_uri(b"just text", "text/plain"), "file_type"),
        (data_uri(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"), "file_type"),
        (data_uri(b"\x89PNG\r\n\x1a\n broken"), "image_load_error"),
        (data_uri(_encoded("BMP"), "image/png"), "file_type"),
        (data_uri(_encoded("TIFF"), "image/png"), "file_type"),
    ],
)
def test_bad_data_uris(caller: httpx.Client, emulator: Emulator, uri: str, error_type: str) -> None:
    errors = _refused(caller, emulator, KONTEXT, valid_body(KONTEXT, image_url=uri))
    assert _types_at(errors, "image_url") == [error_type]


@pytest.mark.parametrize(
    ("crafted", "media_type", "error_type"),
    [
        ("DDS", "image/png", "file_type"),  # a format we do not allow, named by its signature
        ("PSD", "image/png", "file_type"),
        ("SPIDER", "image/png", "image_load_error"),  # no signature: just unreadable
        ("AVIF", "image/avif", "image_load_error"),  # an allowed format's decoder fails
    ],
)
def test_crafted_image_headers(
    caller: httpx.Client, emulator: Emulator, crafted: str, media_type: str, error_type: str
) -> None:
    uri = data_uri(CRAFTED_HEADERS[crafted], media_type)
    errors = _refused(caller, emulator, KONTEXT, valid_body(KONTEXT, image_url=uri))
    assert _types_at(errors, "image_url") == [error_type]


@pytest.mark.parametrize(
    ("image_format", "media_type"),
    [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"), ("AVIF", "image/avif")],
)
def test_every_allowed_image_type_is_accepted(
    caller: httpx.Client, image_format: str, media_type: str
) -> None:
    body = valid_body(KONTEXT, image_url=data_uri(_encoded(image_format, (32, 16)), media_type))
    response = caller.post(f"/{KONTEXT}", json=body)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-gateway-estimated-cost-micros"]) == 18  # 32x16 at 35000/MP


def test_oversized_image_dimensions(caller: httpx.Client, emulator: Emulator) -> None:
    # A PNG header claiming 20000x10 (fal's limit is 14142 a side); the pixels are never decoded.
    wide = _encoded("PNG", (20000, 1))
    errors = _refused(caller, emulator, KONTEXT, valid_body(KONTEXT, image_url=data_uri(wide)))
    assert _types_at(errors, "image_url") == ["image_too_large"]


def test_lora_weights_must_be_urls(caller: httpx.Client, emulator: Emulator) -> None:
    body = valid_body(INPAINTING, loras=[{"path": data_uri(b"weights", "image/png")}])
    assert _types_at(_refused(caller, emulator, INPAINTING, body), "loras", 0, "path") == [
        "url_scheme"
    ]


def test_other_weights_are_urls_or_repository_paths(
    caller: httpx.Client, emulator: Emulator
) -> None:
    adapter = {"path": "XLabs-AI/flux-ip-adapter", "image_url": "https://x/a.png", "scale": 1}
    inline = data_uri(b"weights", "application/octet-stream")
    body = valid_body(
        GENERAL_INPAINTING,
        ip_adapters=[{**adapter, "image_encoder_path": inline}],
        controlnets=[{"path": inline, "control_image_url": "https://x/c.png"}],
    )
    errors = _refused(caller, emulator, GENERAL_INPAINTING, body)
    assert _types_at(errors, "ip_adapters", 0, "image_encoder_path") == ["url_scheme"]
    assert _types_at(errors, "controlnets", 0, "path") == ["url_scheme"]
    assert _types_at(errors, "ip_adapters", 0, "path") == []


def test_nested_file_fields_are_checked(caller: httpx.Client, emulator: Emulator) -> None:
    body = valid_body(
        GENERAL_INPAINTING,
        controlnet_unions=[
            {
                "path": "https://x/c",
                "controls": [{"control_image_url": "ftp://x", "control_mode": "canny"}],
            }
        ],
        ip_adapters=[{"path": "p", "image_encoder_path": "e", "image_url": "data:,x", "scale": 1}],
    )
    errors = _refused(caller, emulator, GENERAL_INPAINTING, body)
    assert _types_at(errors, "controlnet_unions", 0, "controls", 0, "control_image_url") == [
        "url_scheme"
    ]
    assert _types_at(errors, "ip_adapters", 0, "image_url") == ["file_type"]


def test_nan_and_infinity_are_not_json(caller: httpx.Client, emulator: Emulator) -> None:
    upstream = UpstreamLog(emulator)
    raw = (
        '{"prompt": "x", "image_url": "https://x/a.png",'
        ' "loras": [{"path": "https://x/l", "scale": NaN}]}'
    )
    response = caller.post(f"/{KONTEXT}", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert upstream.submits() == []


_NUMBER = "<number>"


@pytest.mark.parametrize("number", ['"nan"', '"inf"', '"-Infinity"'])
@pytest.mark.parametrize(
    ("endpoint", "change", "loc"),
    [
        (KONTEXT, {"guidance_scale": _NUMBER}, ("guidance_scale",)),
        (IMAGE_TO_IMAGE, {"strength": _NUMBER}, ("strength",)),
        (INPAINTING, {"loras": [{"path": "https://x/l", "scale": _NUMBER}]}, ("loras", 0, "scale")),
        (GENERAL_INPAINTING, {"nag_tau": _NUMBER}, ("nag_tau",)),
        (
            GENERAL_INPAINTING,
            {"loras": [{"path": "https://x/l", "scale": {"layer": _NUMBER}}]},
            ("loras", 0, "scale", "dict[str,float]", "layer"),
        ),
        (
            GENERAL_INPAINTING,
            {
                "controlnets": [
                    {
                        "path": "https://x/c",
                        "control_image_url": "https://x/c.png",
                        "conditioning_scale": _NUMBER,
                    }
                ]
            },
            ("controlnets", 0, "conditioning_scale"),
        ),
        (
            GENERAL_INPAINTING,
            {
                "ip_adapters": [
                    {
                        "path": "p",
                        "image_encoder_path": "e",
                        "image_url": "https://x/i.png",
                        "scale": _NUMBER,
                    }
                ]
            },
            ("ip_adapters", 0, "scale"),
        ),
    ],
)
def test_non_finite_numbers_are_refused(
    caller: httpx.Client,
    emulator: Emulator,
    endpoint: str,
    change: dict[str, Any],
    loc: tuple[str | int, ...],
    number: str,
) -> None:
    # pydantic would coerce these strings to floats that cannot be forwarded as JSON numbers
    # (NaN, Infinity and overflowing literals are refused as JSON already, see below).
    raw = json.dumps(valid_body(endpoint, **change)).replace(f'"{_NUMBER}"', number)
    errors = _refused(caller, emulator, endpoint, raw.encode())
    assert _types_at(errors, *loc) == ["finite_number"]


@pytest.fixture(scope="module")
def small_gateway(redis_server: RedisServer, emulator: Emulator) -> Iterator[Gateway]:
    limits = {"max_body_bytes": 60_000, "max_data_uri_bytes": 20_000}
    with Gateway(redis_server.url, emulator.url, limits) as gateway:
        yield gateway


def test_oversize_data_uri(small_gateway: Gateway, emulator: Emulator) -> None:
    token, _ = small_gateway.new_key()
    noise = random.Random(1).randbytes(100 * 100 * 3)  # incompressible, so the PNG stays large
    noisy = Image.frombytes("RGB", (100, 100), noise)
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    assert 20_000 < len(buffer.getvalue()) < 40_000
    with small_gateway.client(token) as client:
        errors = _refused(
            client, emulator, KONTEXT, valid_body(KONTEXT, image_url=data_uri(buffer.getvalue()))
        )
    assert _types_at(errors, "image_url") == ["file_too_large"]


def test_oversize_body_is_413(small_gateway: Gateway, emulator: Emulator) -> None:
    token, _ = small_gateway.new_key()
    body = valid_body(KONTEXT, prompt="x" * 70_000)
    with small_gateway.client(token) as client:
        upstream = UpstreamLog(emulator)
        declared = client.post(f"/{KONTEXT}", json=body)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            raw = httpx.Request("POST", "http://x", json=body).read()
            for start in range(0, len(raw), 8192):
                yield raw[start : start + 8192]

        streamed = client.post(
            f"/{KONTEXT}", content=chunks(), headers={"Content-Type": "application/json"}
        )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error_type"] == "request_too_large"
    assert upstream.submits() == []


def test_base64_of_the_right_size_passes(small_gateway: Gateway) -> None:
    token, _ = small_gateway.new_key()
    small = png(40, 30)
    assert len(base64.b64encode(small)) < 20_000
    with small_gateway.client(token) as client:
        assert (
            client.post(
                f"/{KONTEXT}", json=valid_body(KONTEXT, image_url=data_uri(small))
            ).status_code
            == 200
        )
