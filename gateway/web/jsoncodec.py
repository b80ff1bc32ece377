"""JSON for the gateway's own answers and for reading fal's, with orjson (several times faster
than the standard library on the bodies of the hot path)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

loads = orjson.loads


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return orjson.dumps(value).decode()


class JSONResponse(_StarletteJSONResponse):
    """A JSON answer rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
