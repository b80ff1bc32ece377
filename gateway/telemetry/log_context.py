"""What ties log lines to the request being handled: a dict of fields per request.

The access log layer (``telemetry.access_log``) starts the dict with the gateway's request id;
code that learns more while handling the request (the caller's key, the endpoint, fal's request
id, the fal account) adds to it with ``bind``. ``ContextFilter`` puts the fields on every record
logged meanwhile, the request's access line included. The dict is shared, not copied, with tasks
the request starts, so what they bind shows on its access line too. Outside a request (background
loops) there is no dict and ``bind`` does nothing.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

CONTEXT_FIELDS = ("request_id", "fal_request_id", "key_id", "team", "endpoint", "account")
"""The fields a request's lines may carry, in the order text lines show them."""

_fields: ContextVar[dict[str, str] | None] = ContextVar("gateway_log_fields", default=None)


def begin(request_id: str) -> Token[dict[str, str] | None]:
    """Start the fields of a request being handled; ``end`` with the token when it is done."""
    return _fields.set({"request_id": request_id})


def end(token: Token[dict[str, str] | None]) -> None:
    _fields.reset(token)


def current() -> dict[str, str] | None:
    """The fields of the request being handled, or None outside a request."""
    return _fields.get()


def bind(**fields: str) -> None:
    """Add ``fields`` (empty values are left out) to the lines of the request being handled."""
    found = _fields.get()
    if found is not None:
        for name, value in fields.items():
            if value:
                found[name] = value


class ContextFilter(logging.Filter):
    """Puts the fields of the request being handled on each record (fields a record already
    has are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = _fields.get()
        if found:
            attributes = record.__dict__
            for name, value in found.items():
                attributes.setdefault(name, value)
        return True
