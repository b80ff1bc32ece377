"""What a request costs at fal, estimated before it is sent, and the price that says so.

cost = per request + for each output image (ceil(width * height * price per megapixel / 10^6)
+ per image) micro-units. fal prices these endpoints per output megapixel; the rounding rule is
ours (up, per image). The per-image and per-request terms are 0 in the catalog; a price set at
run time (``gateway.prices``) may use them.

The output size comes from the request when it states one (``image_size``, a Kontext ratio),
otherwise from the input image's real size (read from a data URI, or from the header of a URL).
When that size cannot be learnt the estimate is the largest output the request can produce, marked
inexact: an estimate is always an upper bound of what fal charges. Usage is settled on the sizes
fal actually returns, never above the reservation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.catalog.common import ImageEditInput, Size

_PER_MEGAPIXEL = 1_000_000
CATALOG_VERSION = 0
"""The version of a price that is the catalog's own (nothing set at run time)."""


@dataclass(frozen=True)
class Price:
    """One endpoint's price, in micro-units, and the version of the price table that set it."""

    per_megapixel_micros: int
    per_image_micros: int = 0
    per_request_micros: int = 0
    version: int = CATALOG_VERSION

    def image_cost(self, size: Size) -> int:
        """The price of one output image of ``size``, rounded up to a whole micro-unit."""
        pixels_cost = -(-size.width * size.height * self.per_megapixel_micros // _PER_MEGAPIXEL)
        return pixels_cost + self.per_image_micros

    def cost(self, sizes: Iterable[Size]) -> int:
        """The price of a request whose output images have ``sizes``."""
        return self.per_request_micros + sum(self.image_cost(size) for size in sizes)

    def terms(self) -> dict[str, int]:
        """The terms by name, as the admin API shows them."""
        return {
            "per_megapixel_micros": self.per_megapixel_micros,
            "per_image_micros": self.per_image_micros,
            "per_request_micros": self.per_request_micros,
        }

    def encode(self) -> str:
        """The compact form reservations and request records keep: ``version:mp:image:request``
        (short, so a request record stays in Redis's compact hash encoding)."""
        terms = (self.version, self.per_megapixel_micros, self.per_image_micros)
        return ":".join(str(term) for term in (*terms, self.per_request_micros))

    @classmethod
    def decode(cls, text: str | None) -> Price | None:
        """The price ``encode`` wrote; None for none (a record older than run-time prices)."""
        parts = (text or "").split(":")
        if len(parts) != 4 or not all(part.isdecimal() for part in parts):
            return None
        version, per_megapixel, per_image, per_request = (int(part) for part in parts)
        return cls(per_megapixel, per_image, per_request, version)


@dataclass(frozen=True)
class Estimate:
    size: Size
    """Each output image's size."""
    num_images: int
    cost_micros: int
    exact: bool
    """False when the input's size is unknown and the size is the largest possible."""
    price: Price
    """The price it was estimated at."""


def estimate(request: ImageEditInput, price: Price, input_size: Size | None) -> Estimate:
    """The cost of ``request`` given its input image's size, or its upper bound when the size
    is unknown."""
    if input_size is not None or request.output_size_is_stated():
        size, exact = request.output_size(input_size or Size(1, 1)), True
    else:
        size, exact = request.largest_output_size(), False
    cost = price.cost([size] * request.num_images)
    return Estimate(size, request.num_images, cost, exact, price)


FAL_MEGAPIXEL = 1024 * 1024
"""Pixels in the megapixel fal bills by. fal quotes its per-megapixel prices as the price of a
1024x1024 image (its pricing pages and third-party price lists); the exact figure is not
published (UNCONFIRMED)."""


def fal_billable_units(size: Size, num_images: int = 1) -> int:
    """The units fal bills ``num_images`` output images of ``size`` in: "images are billed by
    rounding up to the nearest megapixel" (fal.ai/models/fal-ai/flux-general), per image. The
    emulator bills by this rule; the reconciliation report expects it."""
    return num_images * max(1, -(-size.width * size.height // FAL_MEGAPIXEL))
