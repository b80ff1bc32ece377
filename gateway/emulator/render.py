"""Deterministic stand-in images for the emulated FLUX endpoints.

Each output blends the (resized) input image with a smooth colour field drawn from the seed, the
prompt, the input bytes and the image's index, so the same request gives the same bytes and a
different seed gives a different picture. Inpainting composites through a thresholded mask: every
pixel outside the mask is the input's own pixel. CPU-bound: call from a worker thread.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass

from PIL import Image

from gateway.catalog import ImageEditInput, Size
from gateway.media.images import MAX_SIDE, UnreadableImage, open_image

_FIELD_CELLS = 4  # the colour field is a 4x4 grid of random colours, smoothly interpolated
_MASK_THRESHOLD = 128


class ImageLoadError(ValueError):
    """Input bytes of ``field`` that are not an image fal could use; ``error_type`` is fal's."""

    def __init__(self, field: str, message: str, error_type: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.error_type = error_type


@dataclass(frozen=True)
class RenderedImage:
    content: bytes
    content_type: str
    extension: str
    size: Size


def load_image(field: str, data: bytes) -> Image.Image:
    """Decode input ``field``, refusing what fal refuses (not an image, a side over 14142)."""
    try:
        image = open_image(data)
    except UnreadableImage as exc:
        raise ImageLoadError(
            field, "Failed to load the image: not a supported image", "image_load_error"
        ) from exc
    if image.width > MAX_SIDE or image.height > MAX_SIDE:
        raise ImageLoadError(
            field,
            f"Image is {image.width}x{image.height}; the largest side allowed is {MAX_SIDE}",
            "image_too_large",
        )
    try:
        image.load()
    except Exception as exc:  # decoders raise anything on damaged data
        raise ImageLoadError(
            field, "Failed to load the image: the file is damaged", "image_load_error"
        ) from exc
    return image


def _colour_field(key: bytes, size: Size) -> Image.Image:
    cells = random.Random(key).randbytes(_FIELD_CELLS * _FIELD_CELLS * 3)  # noqa: S311 (not security)
    small = Image.frombytes("RGB", (_FIELD_CELLS, _FIELD_CELLS), cells)
    return small.resize(size, Image.Resampling.BICUBIC)


def _encode(image: Image.Image, output_format: str) -> RenderedImage:
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG")
        content_type, extension = "image/png", "png"
    else:
        image.save(buffer, format="JPEG", quality=90)
        content_type, extension = "image/jpeg", "jpg"
    return RenderedImage(buffer.getvalue(), content_type, extension, Size(*image.size))


def render(
    request: ImageEditInput, seed: int, image_bytes: bytes, mask_bytes: bytes | None
) -> list[RenderedImage]:
    """The ``num_images`` outputs for ``request``, encoded in its ``output_format``."""
    source = load_image("image_url", image_bytes).convert("RGB")
    size = request.output_size(Size(*source.size))
    base = source if source.size == size else source.resize(size, Image.Resampling.LANCZOS)
    mask = None
    if mask_bytes is not None:
        mask = (
            load_image("mask_url", mask_bytes)
            .convert("L")
            .resize(size, Image.Resampling.NEAREST)
            .point(lambda v: 255 if v >= _MASK_THRESHOLD else 0)
        )
    digest = hashlib.sha256(image_bytes + (mask_bytes or b"")).hexdigest()
    outputs = []
    for index in range(request.num_images):
        key = f"{seed}:{index}:{digest}:{request.prompt}".encode()
        edited = Image.blend(base, _colour_field(key, size), request.edit_strength())
        if mask is not None:
            edited = Image.composite(edited, base, mask)
        outputs.append(_encode(edited, request.output_format))
    return outputs


DEMO_SIZE = Size(512, 384)


def demo_images() -> dict[str, bytes]:
    """A sample photo (sky over a field) and a mask over its middle, for ``/files/demo/``."""
    width, height = DEMO_SIZE
    shade = Image.linear_gradient("L").resize(DEMO_SIZE).point(lambda v: 60 + v // 3)
    photo = Image.merge("RGB", (shade, shade, Image.new("L", DEMO_SIZE, 220)))
    photo.paste((70, 130, 60), (0, 2 * height // 3, width, height))
    mask = Image.new("L", DEMO_SIZE, 0)
    mask.paste(255, (width // 3, height // 4, 2 * width // 3, 3 * height // 4))
    encoded = {}
    for name, image in (("photo.png", photo), ("mask.png", mask)):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded[name] = buffer.getvalue()
    return encoded
