"""Input images as fal accepts them: JPEG, PNG, WebP, GIF and AVIF, read by those decoders only.

Pillow would otherwise try every format it knows on the bytes, and its exotic decoders (DDS, PSD,
SPIDER...) raise on crafted headers whatever exception they happen to hit.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

from PIL import Image

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "AVIF")
MAX_SIDE = 14142
"""fal's largest accepted image side in pixels."""

# fal accepts images up to 14142 pixels a side, so one that size is not a decompression bomb
# (Pillow's own default refuses about 179 megapixels). The gateway itself only reads headers.
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
ALLOWED_MEDIA_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/gif", "image/avif"}
)
ALLOWED_NAMES = "jpg, jpeg, png, webp, gif, avif"
"""The allowed types as fal's documentation names them."""


class UnreadableImage(ValueError):
    """Bytes that none of the allowed decoders can read."""


def open_image(data: bytes) -> Image.Image:
    """The image in ``data``, its header read (pixels load on demand); ``UnreadableImage`` when
    it is not one of the allowed formats or its decoder fails on it."""
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Exception as exc:  # decoders raise anything on crafted input (OverflowError, ...)
        raise UnreadableImage(f"not a readable image ({ALLOWED_NAMES})") from exc


def other_format(data: bytes) -> str | None:
    """The format, other than the allowed ones, whose signature ``data`` starts with (only the
    formats' signature checks run, never their decoders)."""
    Image.init()
    prefix = data[:16]  # what Image.open hands the checks
    for name, (_, accept) in Image.OPEN.items():
        if name not in ALLOWED_FORMATS and accept is not None and _matches(accept, prefix):
            return name
    return None


def _matches(accept: Callable[[bytes], bool | str], prefix: bytes) -> bool:
    try:
        found = accept(prefix)
    except (IndexError, TypeError, struct.error):  # a short prefix; Image.open skips these too
        return False
    return bool(found) and not isinstance(found, str)  # a str is a warning, not a match
