"""The endpoints the product serves: one entry each, so adding an endpoint is a data change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from gateway.catalog.common import ImageEditInput
from gateway.catalog.flux_general import FluxGeneralInpaintingInput
from gateway.catalog.flux_kontext import FluxKontextLoraInput
from gateway.catalog.flux_lora import FluxLoraImageToImageInput, FluxLoraInpaintingInput
from gateway.catalog.pricing import Price
from gateway.errors import RequestValidationFailed
from gateway.web import jsoncodec


@dataclass(frozen=True)
class Endpoint:
    """One fal endpoint: its id (``owner/app[/subpath]``), input model (which also knows its
    file fields and output-size rule) and fal's price per output megapixel: the default of the
    price table, which can change it at run time (``gateway.prices``)."""

    id: str
    input_model: type[ImageEditInput]
    price_per_megapixel_micros: int

    @property
    def catalog_price(self) -> Price:
        """The catalog's price (version 0), what applies until one is set at run time."""
        return Price(self.price_per_megapixel_micros)

    @property
    def app_id(self) -> str:
        """``owner/app``: the scope of request ids, used by status, result and cancel URLs."""
        owner, app, *_ = self.id.split("/")
        return f"{owner}/{app}"

    def parse_input(self, raw: bytes) -> ImageEditInput:
        """Validate a raw JSON body, raising fal's 422 on any problem."""
        return self.validate(decode_body(raw))

    def validate(self, data: Any) -> ImageEditInput:
        """Validate a decoded body, raising fal's 422 on any problem."""
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationFailed.from_pydantic(exc) from exc


def decode_body(raw: bytes) -> Any:
    """A JSON body, or fal's 422 when it is not strict JSON (``NaN`` and ``Infinity`` included,
    which Python's own parser would accept and could not forward as JSON)."""
    try:
        return jsoncodec.loads(raw)
    except ValueError as exc:
        raise RequestValidationFailed(
            [{"loc": ["body"], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}]
        ) from exc


CATALOG: Mapping[str, Endpoint] = MappingProxyType(
    {
        e.id: e
        for e in (
            # Prices in micro-dollars per output megapixel (fal-protocol.md §10; flux-general's
            # inpainting price is taken from flux-general, as the notes suggest).
            Endpoint("fal-ai/flux-lora/inpainting", FluxLoraInpaintingInput, 35_000),
            Endpoint("fal-ai/flux-general/inpainting", FluxGeneralInpaintingInput, 75_000),
            Endpoint("fal-ai/flux-lora/image-to-image", FluxLoraImageToImageInput, 35_000),
            Endpoint("fal-ai/flux-kontext-lora", FluxKontextLoraInput, 35_000),
        )
    }
)

APP_IDS: frozenset[str] = frozenset(e.app_id for e in CATALOG.values())
"""Every ``owner/app`` that some catalog endpoint lives under."""


def find_endpoint(endpoint_id: str) -> Endpoint | None:
    """The catalog entry for ``owner/app[/subpath]``, or None when it is not served."""
    return CATALOG.get(endpoint_id.strip("/"))
