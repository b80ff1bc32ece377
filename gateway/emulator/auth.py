"""The emulator's key check: ``Authorization: Key <k>`` or ``Bearer <k>``, as fal accepts.

Each key stands for one fal account: the requests it submitted are its own (another key gets
404, as for an unknown id), and a locked account (exhausted balance) may still read status and
results but not submit, run or upload (403).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Sequence
from typing import Any

from gateway.errors import Forbidden, Unauthorized

_SCHEMES = ("key", "bearer")
LOCKED_DETAIL = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)


class AccountLocked(Forbidden):
    """fal's answer to a billable call of a locked account: a bare ``detail``, no type."""

    def __init__(self) -> None:
        super().__init__(LOCKED_DETAIL)

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


def credential(header: str | None) -> str | None:
    """The secret in an ``Authorization`` header of either scheme, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in _SCHEMES or not value:
        return None
    return value


def fingerprint(key: str) -> str:
    """The 12 hex digits that name a key in logs, knobs and job ownership (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


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


def require_unlocked(account: str, locked: Collection[str]) -> None:
    """Refuse a billable call of the account fingerprinted ``account`` when it is locked."""
    if account in locked:
        raise AccountLocked()
