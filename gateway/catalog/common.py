"""Field types shared by the endpoints' input models, and the base every input model extends.

Facts (ranges, defaults, presets) come from ``fal-protocol.md`` §10. Unknown fields are ignored,
as fal's own models ignore them.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from gateway.catalog.files import FileField, image, weights
from gateway.media.images import MAX_SIDE


class Size(NamedTuple):
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


ImageSizePreset = Literal[
    "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"
]

IMAGE_SIZE_PRESETS: dict[str, Size] = {
    "square_hd": Size(1024, 1024),
    "square": Size(512, 512),
    "portrait_4_3": Size(768, 1024),
    "portrait_16_9": Size(576, 1024),
    "landscape_4_3": Size(1024, 768),
    "landscape_16_9": Size(1024, 576),
}

MAX_LORAS = 16
"""Most items of ``loras`` (and of flux-general's ``control_loras``). fal sets no limit ("any number
of LoRAs ... merged together", §10.1) while its guide warns that stacking three strong LoRAs
degrades them all: 16 is far past any useful stack, and bounds the work of checking a body."""

OutputFormat = Literal["jpeg", "png"]
Probability = Annotated[float, Field(ge=0, le=1)]


class FalModel(BaseModel):
    """Base for every input object: unknown fields are dropped, as fal does; NaN and infinities
    are refused (they could not be forwarded as JSON numbers)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class ImageSize(FalModel):
    width: Annotated[int, Field(gt=0, le=MAX_SIDE)] = 512
    height: Annotated[int, Field(gt=0, le=MAX_SIDE)] = 512


ImageSizeField = Annotated[
    Annotated[ImageSize, Tag("custom")] | Annotated[ImageSizePreset, Tag("preset")],
    Discriminator(lambda v: "preset" if isinstance(v, str) else "custom"),
]
"""``image_size``: a preset name or ``{width, height}``; errors name only the branch used."""


def resolve_image_size(value: ImageSize | ImageSizePreset) -> Size:
    """The pixel size an ``image_size`` field names."""
    if isinstance(value, ImageSize):
        return Size(value.width, value.height)
    return IMAGE_SIZE_PRESETS[value]


class LoraWeight(FalModel):
    path: str
    scale: float = 1.0


class ImageEditInput(FalModel):
    """What all four editing endpoints share; the emulator renders from this interface."""

    prompt: str
    image_url: str
    seed: int | None = None
    sync_mode: bool = False
    num_images: Annotated[int, Field(ge=1, le=4)] = 1
    enable_safety_checker: bool = True
    output_format: OutputFormat = "jpeg"
    loras: Annotated[list[LoraWeight], Field(max_length=MAX_LORAS)] = Field(default_factory=list)

    def inpainting_mask_url(self) -> str | None:
        """The inpainting mask, for endpoints that take one."""
        return None

    def edit_strength(self) -> float:
        """How far the output moves from the input image (0 keeps it, 1 replaces it)."""
        return 0.5

    FILE_FIELDS: ClassVar[tuple[FileField, ...]] = (
        image("image_url"),
        weights("loras", "*", "path"),
    )
    """The fields that hold files (URLs or data URIs)."""

    def output_size(self, input_size: Size) -> Size:
        """The size of each output image, given the size of ``image_url``."""
        raise NotImplementedError

    def output_size_is_stated(self) -> bool:
        """Whether the output size follows from the request alone, whatever the input size."""
        raise NotImplementedError

    def largest_output_size(self) -> Size:
        """The largest size each output image can have, whatever the input (what is reserved
        when the input's size cannot be learnt)."""
        return self.output_size(Size(MAX_SIDE, MAX_SIDE))
