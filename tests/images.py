"""Test images: encoded bytes, data URIs, decoding."""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib

from PIL import Image


def png(width: int, height: int, colour: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A PNG with a horizontal gradient, so resizes and edits are visible."""
    image = Image.new("RGB", (width, height), colour)
    for x in range(width):
        for y in range(0, height, max(1, height // 8)):
            image.putpixel((x, y), (x * 255 // max(1, width - 1), 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG of any size: signature, header chunk and an empty data chunk, no
    pixels (a file whose header states a size its pixels do not back)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"")


def mask_left_half(width: int, height: int) -> bytes:
    """A mask that is white (repaint) on the left half and black elsewhere."""
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (0, 0, width // 2, height))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(content: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


def decode(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


CRAFTED_HEADERS: dict[str, bytes] = {
    # A DDS header whose pixel format FourCC is unknown: NotImplementedError.
    "DDS": b"DDS "
    + struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0)
    + bytes(44)
    + struct.pack("<2I", 32, 0x4)
    + b"XXXX"
    + bytes(40),
    # A PSD of 2^31-1 pixels a side, uncompressed: its tile offset overflows (OverflowError).
    "PSD": b"8BPS"
    + struct.pack(">H6xHIIHH", 1, 3, 0x7FFFFFFF, 0x7FFFFFFF, 8, 3)
    + struct.pack(">IIIH", 0, 0, 0, 0),
    # A SPIDER header (27 floats) with an infinite stack number (OverflowError).
    "SPIDER": struct.pack(
        ">27f", 1, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 1, *[0] * 8, 108, 108, math.inf, 0, 0, 0
    ),
    # An AVIF file type box and a metadata box without an image item (RuntimeError).
    "AVIF": _box(b"ftyp", b"avif\0\0\0\0avifmif1miaf")
    + _box(b"meta", bytes(4) + _box(b"hdlr", bytes(8) + b"pict" + bytes(13))),
}
"""Tiny files that make Pillow's decoders raise something other than its usual errors."""
