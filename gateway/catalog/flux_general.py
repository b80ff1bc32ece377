"""Input of ``fal-ai/flux-general/inpainting`` (§10.3).

Ranges follow fal's ``flux-general/image-to-image`` schema, which the notes take as identical.
``controlnets`` and ``controlnet_unions`` are documented as "only one supported": more than one is
refused here rather than paid for and failed upstream. fal documents no bound for the other lists;
the ones here (``MAX_LORAS``, ``MAX_CONDITIONS``, ``MAX_LAYER_SCALES``) are generous and keep the
work of checking a body small.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.catalog.common import MAX_LORAS, FalModel, OutputFormat, Probability
from gateway.catalog.files import image, model, weights
from gateway.catalog.flux_lora import SizedEditInput

MAX_CONDITIONS = 8
"""Most items of ``ip_adapters``, ``easycontrols`` and a union's ``controls``: each is one more
conditioning of the same generation (a union knows 7 control modes, fal takes one ControlNet)."""
MAX_LAYER_SCALES = 1024
"""Most layers in a per-layer LoRA scale: FLUX.1 [dev] has about 500 LoRA-able linear layers (19
double and 38 single transformer blocks)."""

LayerScale = float | Annotated[dict[str, float], Field(max_length=MAX_LAYER_SCALES)]
"""A LoRA scale: one number, or ``{layer_name: scale}`` per layer (unnamed layers keep 1.0)."""


class GeneralLoraWeight(FalModel):
    path: str
    scale: LayerScale = 1.0


GeneralLoras = Annotated[list[GeneralLoraWeight], Field(max_length=MAX_LORAS)]


class ControlLoraWeight(FalModel):
    path: str
    control_image_url: str
    scale: LayerScale = 1.0
    preprocess: Literal["canny", "depth", "None"] = "None"


class ControlImage(FalModel):
    """A control image and how strongly, when and where it conditions generation."""

    control_image_url: str
    conditioning_scale: float = 1.0
    start_percentage: Probability = 0.0
    end_percentage: Probability = 1.0
    mask_image_url: str | None = None
    mask_threshold: Probability = 0.5


class ControlNet(ControlImage):
    path: str
    config_url: str | None = None
    variant: str | None = None


class ControlNetUnionInput(ControlImage):
    control_mode: Literal["canny", "tile", "depth", "blur", "pose", "gray", "low-quality"]


class ControlNetUnion(FalModel):
    path: str
    controls: Annotated[list[ControlNetUnionInput], Field(max_length=MAX_CONDITIONS)]
    config_url: str | None = None
    variant: str | None = None


class IPAdapter(FalModel):
    path: str
    image_encoder_path: str
    image_url: str
    scale: float
    subfolder: str | None = None
    weight_name: str | None = None
    image_encoder_subfolder: str | None = None
    image_encoder_weight_name: str | None = None
    mask_image_url: str | None = None
    mask_threshold: Probability = 0.5


class EasyControlWeight(FalModel):
    control_method_url: str
    image_control_type: Literal["subject", "spatial"]
    image_url: str
    scale: float = 1.0


class FillImage(FalModel):
    fill_image_url: str
    in_context_fill: bool = False
    use_prompt: bool = False


class FluxGeneralInpaintingInput(SizedEditInput):
    FILE_FIELDS = (
        *SizedEditInput.FILE_FIELDS,
        image("mask_url"),
        image("reference_image_url"),
        weights("control_loras", "*", "path"),
        image("control_loras", "*", "control_image_url"),
        model("controlnets", "*", "path"),
        image("controlnets", "*", "control_image_url"),
        image("controlnets", "*", "mask_image_url"),
        model("controlnet_unions", "*", "path"),
        image("controlnet_unions", "*", "controls", "*", "control_image_url"),
        image("controlnet_unions", "*", "controls", "*", "mask_image_url"),
        model("ip_adapters", "*", "path"),
        model("ip_adapters", "*", "image_encoder_path"),
        image("ip_adapters", "*", "image_url"),
        image("ip_adapters", "*", "mask_image_url"),
        model("easycontrols", "*", "control_method_url"),
        image("easycontrols", "*", "image_url"),
        image("fill_image", "fill_image_url"),
    )

    mask_url: str
    loras: GeneralLoras = Field(default_factory=list)  # type: ignore[assignment]
    num_images: Annotated[int, Field(ge=1, le=10)] = 1
    output_format: OutputFormat = "png"
    control_loras: Annotated[list[ControlLoraWeight], Field(max_length=MAX_LORAS)] = Field(
        default_factory=list
    )
    controlnets: Annotated[list[ControlNet], Field(max_length=1)] = Field(default_factory=list)
    controlnet_unions: Annotated[list[ControlNetUnion], Field(max_length=1)] = Field(
        default_factory=list
    )
    ip_adapters: Annotated[list[IPAdapter], Field(max_length=MAX_CONDITIONS)] = Field(
        default_factory=list
    )
    easycontrols: Annotated[list[EasyControlWeight], Field(max_length=MAX_CONDITIONS)] = Field(
        default_factory=list
    )
    fill_image: FillImage | None = None
    guidance_scale: Annotated[float, Field(ge=0, le=20)] = 3.5
    real_cfg_scale: Annotated[float, Field(ge=0, le=5)] = 3.5
    use_real_cfg: bool = False
    use_cfg_zero: bool = False
    use_beta_schedule: bool = False
    reference_image_url: str | None = None
    reference_strength: Annotated[float, Field(ge=-3, le=3)] = 0.65
    reference_start: Probability = 0.0
    reference_end: Probability = 1.0
    base_shift: Annotated[float, Field(ge=0.01, le=5)] = 0.5
    max_shift: Annotated[float, Field(ge=0.01, le=5)] = 1.15
    sigma_schedule: str | None = None
    scheduler: Literal["euler", "dpmpp_2m"] = "euler"
    negative_prompt: str = ""
    nag_scale: Annotated[float, Field(ge=2, le=10)] = 3.0
    nag_tau: float = 2.5
    nag_alpha: float = 0.25
    nag_end: float = 0.25

    def inpainting_mask_url(self) -> str | None:
        return self.mask_url
