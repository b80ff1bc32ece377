"""Every URL handed to a caller points at the gateway.

Queue URLs (``response_url``, ``status_url``, ``cancel_url``) are rebuilt from the public URL.
The file fields of a model output (what ``catalog.outputs`` declares: ``images[].url``) holding a
URL on an upstream or fal media host become gateway links, ``{public}/files/{token}/{file name}``,
that the gateway serves by streaming the original. Nothing else is touched: a prompt echoed back
with a fal URL in it stays text, never a link the gateway would fetch. The token is the original
URL sealed with AES-GCM under the link secret: stateless (any replica can serve it), opaque (the
upstream host cannot be read from it) and unforgeable (no open proxy).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from typing import Any, get_args, get_origin
from urllib.parse import quote, urlsplit

from pydantic import BaseModel

from gateway.catalog.files import FileField
from gateway.catalog.outputs import EditOutput, OutputImage
from gateway.web.sealing import Sealer

_CONTEXT = b"fal-gateway file link v1"
FILE_LINK = b""
"""The purpose of a file link's token (an empty one: links made before purposes existed)."""
UPLOAD_GRANT = b"upload grant"
"""The purpose of an upload URL's token."""


def _file_fields(model: type[BaseModel]) -> Iterator[FileField]:
    """The ``url`` of every file object (``OutputImage``) field of ``model``, or list of them."""
    for name, field in model.model_fields.items():
        if field.annotation is OutputImage:
            yield FileField((name, "url"))
        elif get_origin(field.annotation) is list and get_args(field.annotation) == (OutputImage,):
            yield FileField((name, "*", "url"))


OUTPUT_FILES = tuple(_file_fields(EditOutput))
"""Where a model output holds its files' URLs."""
WEBHOOK_FILES = tuple(FileField(("payload", *field.path)) for field in OUTPUT_FILES)
"""The same in a webhook event, which carries the output as its ``payload``."""


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Links:
    """Builds the gateway's URLs and rewrites upstream ones."""

    def __init__(
        self,
        public_url: str,
        upstream_urls: Iterable[str],
        media_hosts: Iterable[str],
        secret: bytes,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self._upstream_origins = frozenset(origin(u) for u in upstream_urls)
        self._media_hosts = tuple(h.lower() for h in media_hosts)
        self._sealer = Sealer(secret, _CONTEXT)

    def request_urls(self, app_id: str, request_id: str) -> dict[str, str]:
        base = f"{self.public_url}/{app_id}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def is_upstream(self, url: str) -> bool:
        """Whether ``url`` lives on fal (an upstream host or a fal media host)."""
        if not url.lower().startswith(("http://", "https://")):
            return False
        if origin(url) in self._upstream_origins:
            return True
        host = (urlsplit(url).hostname or "").lower()
        return any(fnmatch.fnmatchcase(host, pattern) for pattern in self._media_hosts)

    def seal(self, data: bytes, *, purpose: bytes = FILE_LINK, deterministic: bool = False) -> str:
        """``data`` sealed under the link secret for ``purpose`` (``Sealer.seal``)."""
        return self._sealer.seal(data, purpose=purpose, deterministic=deterministic)

    def unseal(self, token: str, *, purpose: bytes = FILE_LINK) -> bytes | None:
        """What ``seal`` sealed for ``purpose``, or None for anything else."""
        return self._sealer.unseal(token, purpose=purpose)

    def file_link(self, url: str) -> str:
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "file"
        token = self.seal(url.encode(), deterministic=True)  # one link per file, stable
        return f"{self.public_url}/files/{token}/{quote(name)}"

    def resolve(self, token: str) -> str | None:
        """The original URL behind a gateway file link, if the link is one of ours."""
        data = self.unseal(token)
        try:
            decoded = data.decode() if data is not None else None
        except UnicodeDecodeError:
            return None
        return decoded if decoded is not None and self.is_upstream(decoded) else None

    def original(self, url: str) -> str:
        """For a gateway file link, the fal URL it stands for (fal fetches that directly);
        any other URL unchanged."""
        prefix = f"{self.public_url}/files/"
        if url.startswith(prefix):
            token = url[len(prefix) :].split("/", 1)[0]
            found = self.resolve(token)
            if found is not None:
                return found
        return url

    def link_if_upstream(self, url: str) -> str:
        """A gateway link for a URL on fal; any other string unchanged."""
        return self.file_link(url) if self.is_upstream(url) else url

    def rewrite(self, value: Any) -> Any:
        """A model output (or a webhook event carrying one, or an error body) with the upstream
        URLs of its known file fields turned into gateway links; nothing else changes."""
        for field in (*OUTPUT_FILES, *WEBHOOK_FILES):
            value = field.map_strings(value, self.link_if_upstream)
        return value

    def rewrite_queue_body(self, body: Any, app_id: str) -> Any:
        """A submit or status body with the gateway's queue URLs (set even where the body lacks
        them); nothing else changes."""
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            return body
        return {**body, **self.request_urls(app_id, body["request_id"])}
