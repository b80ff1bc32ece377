"""File fields: only http(s) URLs and data URIs, and inline images that fal would accept.

Data URIs are decoded and their image header read (format and size, without decoding the pixels):
allowed formats are the ones fal lists (jpg/jpeg, png, webp, gif, avif), each side at most 14142
pixels, each file at most ``max_data_uri_bytes``. LoRA weights must be http(s) URLs; other
weights (model fields) may also be repository paths, but not data URIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.catalog import ImageEditInput, Size
from gateway.catalog.files import FileKind, Loc
from gateway.errors import ErrorItem
from gateway.media.images import (
    ALLOWED_MEDIA_TYPES,
    ALLOWED_NAMES,
    MAX_SIDE,
    UnreadableImage,
    open_image,
    other_format,
)
from gateway.protocol.data_uri import DataUriError, is_data_uri, parse_data_uri

MAX_URL_LENGTH = 4096


@dataclass(frozen=True)
class FileReport:
    errors: list[ErrorItem]
    input_size: Size | None
    """The size of ``image_url`` when it is an inline image (else unknown)."""


def _error(loc: Loc, msg: str, error_type: str) -> ErrorItem:
    return {"loc": ["body", *loc], "msg": msg, "type": error_type}


FileValue = tuple[FileKind, Loc, str]


def file_values(request: ImageEditInput) -> list[FileValue]:
    """Every string held by a file field of ``request``, with its kind and location."""
    data = request.model_dump()
    return [
        (file_field.kind, loc, value)
        for file_field in type(request).FILE_FIELDS
        for loc, value in file_field.values(data)
        if isinstance(value, str)
    ]


def check_files(values: list[FileValue], max_data_uri_bytes: int) -> FileReport:
    """Every file value checked; CPU-bound for large data URIs."""
    errors: list[ErrorItem] = []
    input_size = None
    for kind, loc, value in values:
        if kind is FileKind.MODEL:
            if is_data_uri(value):
                msg = "weights must be an http(s) URL or a repository path"
                errors.append(_error(loc, msg, "url_scheme"))
            continue
        if not is_data_uri(value):
            if not _valid_http_url(value):
                errors.append(_error(loc, "must be an http(s) URL or a data URI", "url_scheme"))
            continue
        if kind is FileKind.WEIGHTS:
            errors.append(_error(loc, "LoRA weights must be an http(s) URL", "url_scheme"))
            continue
        found = _check_image(loc, value, max_data_uri_bytes)
        if isinstance(found, Size):
            if loc == ("image_url",):
                input_size = found
        else:
            errors.append(found)
    return FileReport(errors, input_size)


def _valid_http_url(value: str) -> bool:
    if len(value) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number in range
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _check_image(loc: Loc, value: str, max_bytes: int) -> Size | ErrorItem:
    # base64 inflates by 4/3: refuse oversize payloads before decoding them.
    if len(value) > max_bytes * 4 // 3 + 1024:
        return _error(loc, f"inline file is larger than {max_bytes} bytes", "file_too_large")
    try:
        uri = parse_data_uri(value)
    except DataUriError as exc:
        return _error(loc, f"invalid data URI: {exc}", "invalid_data_uri")
    if len(uri.data) > max_bytes:
        return _error(loc, f"inline file is larger than {max_bytes} bytes", "file_too_large")
    if uri.media_type not in ALLOWED_MEDIA_TYPES:
        msg = f"file type {uri.media_type} is not allowed ({ALLOWED_NAMES})"
        return _error(loc, msg, "file_type")
    try:
        with open_image(uri.data) as image:  # reads the header only
            size = Size(*image.size)
    except UnreadableImage:
        image_format = other_format(uri.data)
        if image_format is not None:
            msg = f"image format {image_format} is not allowed ({ALLOWED_NAMES})"
            return _error(loc, msg, "file_type")
        msg = f"data URI does not hold a readable image ({ALLOWED_NAMES})"
        return _error(loc, msg, "image_load_error")
    if max(size) > MAX_SIDE:
        return too_large(loc, size)
    return size


def too_large(loc: Loc, size: Size) -> ErrorItem:
    """The error for an input image with a side over fal's limit."""
    msg = f"image is {size.width}x{size.height}; sides are limited to {MAX_SIDE}"
    return _error(loc, msg, "image_too_large")
