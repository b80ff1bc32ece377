"""What the admin API takes to set a price: its terms, the endpoint, and when it takes effect.

Terms are in micro-units of the reseller's currency, each at most 100 currency units, so that
an estimate (a few hundred megapixels per image at most) stays far inside what Redis counts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from gateway.accounts.keys import future_moment
from gateway.catalog import CATALOG
from gateway.catalog.pricing import Price

MAX_PRICE_MICROS = 100_000_000
"""Largest term of a price: 100 currency units (per megapixel, image or request)."""

PriceMicros = Annotated[int, Field(ge=0, le=MAX_PRICE_MICROS)]


def known_endpoint(value: str) -> str:
    """``value`` when the catalog serves that endpoint, else a validation error."""
    if value not in CATALOG:
        raise ValueError(f"unknown endpoint; one of {', '.join(sorted(CATALOG))}")
    return value


class PriceTerms(BaseModel):
    """A price's terms: what an output megapixel, an output image and a request cost."""

    model_config = ConfigDict(extra="forbid")

    per_megapixel_micros: Annotated[
        PriceMicros, Field(description="Price per output megapixel, in micro-units.")
    ]
    per_image_micros: Annotated[
        PriceMicros, Field(description="Price per output image on top, in micro-units.")
    ] = 0
    per_request_micros: Annotated[
        PriceMicros, Field(description="Price per request on top, in micro-units.")
    ] = 0

    def price(self, version: int) -> Price:
        return Price(
            self.per_megapixel_micros, self.per_image_micros, self.per_request_micros, version
        )


class PriceSet(PriceTerms):
    """A new price of an endpoint in the table, in effect now or from ``effective_at``."""

    endpoint: Annotated[
        str, Field(description="The endpoint id, e.g. fal-ai/flux-lora/inpainting.")
    ]
    effective_at: Annotated[
        AwareDatetime | None,
        Field(description="When it takes effect (RFC 3339, in the future); now if not given."),
    ] = None
    note: Annotated[str, Field(max_length=500, description="Why (kept with the price).")] = ""

    @field_validator("endpoint")
    @classmethod
    def _served(cls, value: str) -> str:
        return known_endpoint(value)

    @field_validator("effective_at")
    @classmethod
    def _in_future(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        return future_moment("effective_at", value)
