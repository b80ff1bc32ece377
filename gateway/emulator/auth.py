"""The emulator's key check: ``Authorization: Key <k>`` or ``Bearer <k>``, as fal accepts."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from gateway.errors import Unauthorized

_SCHEMES = ("key", "bearer")


def credential(header: str | None) -> str | None:
    """The secret in an ``Authorization`` header of either scheme, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in _SCHEMES or not value:
        return None
    return value


def require_key(header: str | None, accepted: Sequence[str]) -> str:
    """The caller's key, if ``accepted`` holds it (any non-empty key when ``accepted`` is empty)."""
    key = credential(header)
    if key is None:
        raise Unauthorized("Missing or malformed Authorization header")
    if accepted:
        # Compare against every key so timing does not reveal which one nearly matched.
        matches = [hmac.compare_digest(key.encode(), k.encode()) for k in accepted]
        if not any(matches):
            raise Unauthorized("Invalid API key")
    return key
