"""Media inputs: ``data:`` URIs as fal accepts them in file fields."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes


class DataUriError(ValueError):
    """A string that starts like a data URI but cannot be decoded."""


@dataclass(frozen=True)
class DataUri:
    media_type: str
    data: bytes


def is_data_uri(value: str) -> bool:
    return value[:5].lower() == "data:"


def parse_data_uri(value: str) -> DataUri:
    """Decode ``data:[<media type>][;base64],<data>`` (RFC 2397)."""
    if not is_data_uri(value):
        raise DataUriError("not a data URI")
    header, sep, payload = value[5:].partition(",")
    if not sep:
        raise DataUriError("data URI has no ',' separating header and data")
    params = header.split(";")
    media_type = params[0].strip().lower() or "text/plain"
    if params[-1].strip().lower() == "base64":
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DataUriError("data URI is not valid base64") from exc
    else:
        data = unquote_to_bytes(payload)
    return DataUri(media_type, data)
