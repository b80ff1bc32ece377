"""What a request costs at fal, estimated before it is sent.

cost = ceil(width * height * price per megapixel / 10^6) micro-units per image, times
``num_images``.
fal prices these endpoints per output megapixel; the rounding rule is ours (up, per image).

The output size comes from the request when it states one (``image_size``, a Kontext ratio),
otherwise from the input image: its real size when it is inlined as a data URI, and an assumed
1024x1024 when it is a URL the gateway does not fetch. Such estimates are marked inexact; usage is
settled on the sizes fal actually returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.catalog.common import ImageEditInput, Size

ASSUMED_INPUT_SIZE = Size(1024, 1024)
_PER_MEGAPIXEL = 1_000_000


@dataclass(frozen=True)
class Estimate:
    size: Size
    """Each output image's size."""
    num_images: int
    cost_micros: int
    exact: bool
    """False when the size rests on the assumed input size."""


def image_cost_micros(size: Size, price_per_megapixel_micros: int) -> int:
    """The price of one output image of ``size``, rounded up to a whole micro-unit."""
    return -(-size.width * size.height * price_per_megapixel_micros // _PER_MEGAPIXEL)


def estimate(
    request: ImageEditInput, price_per_megapixel_micros: int, input_size: Size | None
) -> Estimate:
    """The expected cost of ``request`` given its input image's size, if known."""
    exact = input_size is not None or request.output_size_is_stated()
    size = request.output_size(input_size or ASSUMED_INPUT_SIZE)
    per_image = image_cost_micros(size, price_per_megapixel_micros)
    return Estimate(size, request.num_images, per_image * request.num_images, exact)
