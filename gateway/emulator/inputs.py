"""Fetching a job's input files the way fal does: http(s) URLs or ``data:`` URIs."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from gateway.protocol.data_uri import DataUriError, is_data_uri, parse_data_uri


class InputFetchError(Exception):
    """An input file that could not be had; rendered as fal's 422 for the field."""

    def __init__(self, field: str, message: str, error_type: str = "file_download_error") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.error_type = error_type


async def fetch_input(client: httpx.AsyncClient, field: str, url: str, max_bytes: int) -> bytes:
    """The bytes behind ``url`` (the value of input ``field``), at most ``max_bytes`` of them."""
    if is_data_uri(url):
        try:
            data = parse_data_uri(url).data
        except DataUriError as exc:
            raise InputFetchError(field, f"Failed to decode the data URI: {exc}") from exc
        if len(data) > max_bytes:
            raise InputFetchError(field, "File is too large", "file_too_large")
        return data
    if not url.lower().startswith(("http://", "https://")):
        raise InputFetchError(
            field, "Unsupported URL: only http(s) URLs and data URIs are accepted"
        )
    try:
        urlsplit(url).port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError as exc:
        raise InputFetchError(field, f"Failed to download the file: {exc}") from exc
    try:
        async with client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise InputFetchError(
                    field,
                    f"Failed to download the file: the server answered {response.status_code}",
                )
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise InputFetchError(field, "File is too large", "file_too_large")
                chunks.append(chunk)
            return b"".join(chunks)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InputFetchError(field, f"Failed to download the file: {type(exc).__name__}") from exc
