"""``/openapi.json`` describes the public API with the catalog's input models."""

from __future__ import annotations

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
