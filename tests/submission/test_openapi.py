"""``/openapi.json`` describes the public API with the catalog's input models."""

from __future__ import annotations

import re
from typing import Any

import httpx

from gateway.catalog import CATALOG
from tests.servers import Gateway


def test_openapi_describes_every_endpoint_with_its_input_model(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": gateway.url}]
    schemas = document["components"]["schemas"]
    for endpoint in CATALOG.values():
        operation = document["paths"][f"/{endpoint.id}"]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        model = ref.rsplit("/", 1)[-1]
        assert set(schemas[model]["required"]) >= {"prompt", "image_url"}
        assert {"401", "403", "413", "422", "502"} <= set(operation["responses"])
        for app_path in ("/status", "/status/stream", "", "/cancel"):
            assert f"/{endpoint.app_id}/requests/{{request_id}}{app_path}" in document["paths"]
    steps = schemas["FluxKontextLoraInput"]["properties"]["num_inference_steps"]
    assert (steps["minimum"], steps["maximum"], steps["default"]) == (10, 50, 30)
    assert document["components"]["securitySchemes"]["gatewayKey"]["scheme"] == "bearer"


def _string(schema: dict[str, Any]) -> dict[str, Any]:
    """The string branch of an optional field's schema."""
    branches: list[dict[str, Any]] = schema.get("anyOf", [schema])
    [string] = [b for b in branches if b.get("type") == "string"]
    return string


def test_openapi_says_what_file_fields_accept(gateway: Gateway) -> None:
    schemas = httpx.get(f"{gateway.url}/openapi.json").json()["components"]["schemas"]
    inline = "data:image/png;base64,iVBORw0KGgo="
    image_fields = [
        schemas["FluxLoraInpaintingInput"]["properties"]["mask_url"],
        schemas["FluxKontextLoraInput"]["properties"]["image_url"],
        schemas["IPAdapter"]["properties"]["mask_image_url"],
        schemas["ControlNetUnionInput"]["properties"]["control_image_url"],
    ]
    for field in map(_string, image_fields):
        assert field["format"] == "uri"
        assert "image/png" in field["description"]
        assert "data URI" in field["description"]
        for accepted in ("https://x/a.png", "HTTP://x/a.png", inline):
            assert re.search(field["pattern"], accepted)
        assert not re.search(field["pattern"], "ftp://x/a.png")
    lora = _string(schemas["LoraWeight"]["properties"]["path"])
    assert re.search(lora["pattern"], "https://x/l.safetensors")
    assert not re.search(lora["pattern"], inline)
    adapter = _string(schemas["IPAdapter"]["properties"]["path"])
    assert re.search(adapter["pattern"], "XLabs-AI/flux-ip-adapter")
    assert not re.search(adapter["pattern"], inline)
    assert "repository" in adapter["description"]
