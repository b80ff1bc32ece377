"""What a request costs at fal, estimated before it is sent.

cost = ceil(width * height * price per megapixel / 10^6) micro-units per image, times
``num_images``.
fal prices these endpoints per output megapixel; the rounding rule is ours (up, per image).

The output size comes from the request when it states one (``image_size``, a Kontext ratio),
otherwise from the input image's real size (read from a data URI, or from the header of a URL).
When that size cannot be learnt the estimate is the largest output the request can produce, marked
inexact: an estimate is always an upper bound of what fal charges. Usage is settled on the sizes
fal actually returns, never above the reservation.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.catalog.common import ImageEditInput, Size

_PER_MEGAPIXEL = 1_000_000


@dataclass(frozen=True)
class Estimate:
    size: Size
    """Each output image's size."""
    num_images: int
    cost_micros: int
    exact: bool
    """False when the input's size is unknown and the size is the largest possible."""


def image_cost_micros(size: Size, price_per_megapixel_micros: int) -> int:
    """The price of one output image of ``size``, rounded up to a whole micro-unit."""
    return -(-size.width * size.height * price_per_megapixel_micros // _PER_MEGAPIXEL)


def estimate(
    request: ImageEditInput, price_per_megapixel_micros: int, input_size: Size | None
) -> Estimate:
    """The cost of ``request`` given its input image's size, or its upper bound when the size
    is unknown."""
    if input_size is not None or request.output_size_is_stated():
        size, exact = request.output_size(input_size or Size(1, 1)), True
    else:
        size, exact = request.largest_output_size(), False
    per_image = image_cost_micros(size, price_per_megapixel_micros)
    return Estimate(size, request.num_images, per_image * request.num_images, exact)


FAL_MEGAPIXEL = 1024 * 1024
"""Pixels in the megapixel fal bills by. fal quotes its per-megapixel prices as the price of a
1024x1024 image (its pricing pages and third-party price lists); the exact figure is not
published (UNCONFIRMED)."""


def fal_billable_units(size: Size, num_images: int = 1) -> int:
    """The units fal bills ``num_images`` output images of ``size`` in: "images are billed by
    rounding up to the nearest megapixel" (fal.ai/models/fal-ai/flux-general), per image. The
    emulator bills by this rule; the reconciliation report expects it."""
    return num_images * max(1, -(-size.width * size.height // FAL_MEGAPIXEL))
