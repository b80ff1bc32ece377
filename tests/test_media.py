"""Data URI decoding (RFC 2397)."""

from __future__ import annotations

import pytest

from gateway.protocol.data_uri import DataUriError, parse_data_uri


def test_base64_and_percent_encoded_payloads() -> None:
    assert parse_data_uri("data:image/png;base64,aGk=").data == b"hi"
    assert parse_data_uri("DATA:Image/PNG;base64,aGk=").media_type == "image/png"
    assert parse_data_uri("data:,a%20b").data == b"a b"
    assert parse_data_uri("data:,x").media_type == "text/plain"


@pytest.mark.parametrize("bad", ["data:image/png;base64", "data:image/png;base64,###", "http://x"])
def test_malformed_uris_are_refused(bad: str) -> None:
    with pytest.raises(DataUriError):
        parse_data_uri(bad)
