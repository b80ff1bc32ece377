"""The endpoints the product serves: one entry each, so adding an endpoint is a data change."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import ValidationError

from gateway.catalog.common import ImageEditInput
from gateway.catalog.flux_general import FluxGeneralInpaintingInput
from gateway.catalog.flux_kontext import FluxKontextLoraInput
from gateway.catalog.flux_lora import FluxLoraImageToImageInput, FluxLoraInpaintingInput
from gateway.errors import RequestValidationFailed


@dataclass(frozen=True)
class Endpoint:
    """One fal endpoint: its id (``owner/app[/subpath]``) and its input model."""

    id: str
    input_model: type[ImageEditInput]

    @property
    def app_id(self) -> str:
        """``owner/app``: the scope of request ids, used by status, result and cancel URLs."""
        owner, app, *_ = self.id.split("/")
        return f"{owner}/{app}"

    def parse_input(self, raw: bytes) -> ImageEditInput:
        """Validate a raw JSON body, raising fal's 422 on any problem."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestValidationFailed(
                [{"loc": ["body"], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}]
            ) from exc
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationFailed.from_pydantic(exc) from exc


CATALOG: Mapping[str, Endpoint] = MappingProxyType(
    {
        e.id: e
        for e in (
            Endpoint("fal-ai/flux-lora/inpainting", FluxLoraInpaintingInput),
            Endpoint("fal-ai/flux-general/inpainting", FluxGeneralInpaintingInput),
            Endpoint("fal-ai/flux-lora/image-to-image", FluxLoraImageToImageInput),
            Endpoint("fal-ai/flux-kontext-lora", FluxKontextLoraInput),
        )
    }
)

APP_IDS: frozenset[str] = frozenset(e.app_id for e in CATALOG.values())
"""Every ``owner/app`` that some catalog endpoint lives under."""


def find_endpoint(endpoint_id: str) -> Endpoint | None:
    """The catalog entry for ``owner/app[/subpath]``, or None when it is not served."""
    return CATALOG.get(endpoint_id.strip("/"))
