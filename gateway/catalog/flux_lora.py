"""Inputs of ``fal-ai/flux-lora/image-to-image`` and ``.../inpainting`` (§10.1, §10.2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.catalog.common import (
    ImageEditInput,
    ImageSizeField,
    Probability,
    Size,
    resolve_image_size,
)
from gateway.catalog.files import image


class SizedEditInput(ImageEditInput):
    """Endpoints whose output is ``image_size`` when given, else the input image's size."""

    image_size: ImageSizeField | None = None
    num_inference_steps: Annotated[int, Field(ge=1, le=50)] = 28
    strength: Annotated[Probability, Field(ge=0.01)] = 0.85

    def edit_strength(self) -> float:
        return self.strength

    def output_size(self, input_size: Size) -> Size:
        if self.image_size is None:
            return input_size
        return resolve_image_size(self.image_size)

    def output_size_is_stated(self) -> bool:
        return self.image_size is not None


class FluxLoraImageToImageInput(SizedEditInput):
    guidance_scale: Annotated[float, Field(ge=0, le=35)] = 3.5
    acceleration: Literal["none", "regular"] = "none"


class FluxLoraInpaintingInput(FluxLoraImageToImageInput):
    FILE_FIELDS = (*FluxLoraImageToImageInput.FILE_FIELDS, image("mask_url"))

    mask_url: str

    def inpainting_mask_url(self) -> str | None:
        return self.mask_url
