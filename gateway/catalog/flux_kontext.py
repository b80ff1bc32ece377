"""Input of ``fal-ai/flux-kontext-lora`` (§10.4) and its output-size rule.

``resolution_mode`` decides the output size:

- ``match_input``: the input size with each side rounded to the nearest multiple of 16 (halves
  up), at least 16 and within fal's 14142-pixel limit.
- ``auto``: the FLUX.1 Kontext training resolution whose aspect ratio is closest to the input's.
- ``"W:H"``: that aspect ratio at about one megapixel, sides multiples of 16.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from gateway.catalog.common import ImageEditInput, OutputFormat, Size
from gateway.media.images import MAX_SIDE

ResolutionMode = Literal[
    "auto",
    "match_input",
    "1:1",
    "16:9",
    "21:9",
    "3:2",
    "2:3",
    "4:5",
    "5:4",
    "3:4",
    "4:3",
    "9:16",
    "9:21",
]

# The (width, height) pairs FLUX.1 Kontext [dev] was trained at.
KONTEXT_RESOLUTIONS: tuple[Size, ...] = tuple(
    Size(w, h)
    for w, h in (
        (672, 1568),
        (688, 1504),
        (720, 1456),
        (752, 1392),
        (800, 1328),
        (832, 1248),
        (880, 1184),
        (944, 1104),
        (1024, 1024),
        (1104, 944),
        (1184, 880),
        (1248, 832),
        (1328, 800),
        (1392, 752),
        (1456, 720),
        (1504, 688),
        (1568, 672),
    )
)

_ONE_MEGAPIXEL = 1024 * 1024


def _multiple_of_16(value: float) -> int:
    nearest = int(value / 16 + 0.5) * 16  # halves round up
    return min(max(16, nearest), MAX_SIDE // 16 * 16)


def kontext_output_size(mode: ResolutionMode, input_size: Size) -> Size:
    """The output size Kontext produces for ``mode`` and an input of ``input_size``."""
    if mode == "match_input":
        return Size(_multiple_of_16(input_size.width), _multiple_of_16(input_size.height))
    if mode == "auto":
        aspect = input_size.width / input_size.height
        return min(KONTEXT_RESOLUTIONS, key=lambda s: abs(math.log(s.width / s.height / aspect)))
    w_part, h_part = (int(p) for p in mode.split(":"))
    ratio = w_part / h_part
    width = math.sqrt(_ONE_MEGAPIXEL * ratio)
    return Size(_multiple_of_16(width), _multiple_of_16(width / ratio))


class FluxKontextLoraInput(ImageEditInput):
    num_inference_steps: Annotated[int, Field(ge=10, le=50)] = 30
    guidance_scale: Annotated[float, Field(ge=0, le=20)] = 2.5
    output_format: OutputFormat = "png"
    acceleration: Literal["none", "regular", "high"] = "none"
    resolution_mode: ResolutionMode = "match_input"

    def output_size(self, input_size: Size) -> Size:
        return kontext_output_size(self.resolution_mode, input_size)

    def output_size_is_stated(self) -> bool:
        return self.resolution_mode not in ("auto", "match_input")

    def largest_output_size(self) -> Size:
        if self.resolution_mode == "auto":
            return max(KONTEXT_RESOLUTIONS, key=lambda s: s.width * s.height)
        return super().largest_output_size()
