"""The admin API as the CLI calls it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

import httpx


class AdminError(Exception):
    """The admin API refused a call; the message is its ``detail``."""


class AdminClient:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, f"/admin/v1{path}", json=json)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        _check(response)
        return response.json()

    def download(self, path: str, params: Mapping[str, str], out: BinaryIO) -> None:
        """GET ``path`` and write its body to ``out`` as it arrives (an export of any size)."""
        try:
            with self._http.stream("GET", f"/admin/v1{path}", params=params) as response:
                if response.is_error:
                    response.read()
                    _check(response)
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.HTTPError) -> AdminError:
        return AdminError(f"cannot reach the gateway at {self._http.base_url}: {exc}")


def _check(response: httpx.Response) -> None:
    if response.is_error:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise AdminError(f"{response.status_code}: {detail}")
