"""API key tokens: ``fgw_<team>_<key id>_<secret>``.

The ``fgw_`` prefix lets secret scanners recognise leaked keys. The team and key id in the token
let the gateway find the key's record in one round trip, in the right cluster slot; only the
SHA-256 of the secret is stored (the secret is 190 random bits, so a slow hash adds nothing).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from dataclasses import dataclass

TOKEN_PREFIX = "fgw"  # noqa: S105 (a public prefix, not a secret)
DEFAULT_TEAM = "default"
TEAM_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,31}"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY_ID_LENGTH = 12
_SECRET_LENGTH = 32
_TOKEN = re.compile(
    rf"{TOKEN_PREFIX}_({TEAM_ID_PATTERN})_([a-z0-9]{{{_KEY_ID_LENGTH}}})_([A-Za-z0-9]{{{_SECRET_LENGTH}}})"
)


@dataclass(frozen=True)
class Token:
    team_id: str
    key_id: str
    secret: str = ""

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}_{self.team_id}_{self.key_id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        """What the key's record keeps of the secret, and what admission checks."""
        return hash_secret(self.secret)


@dataclass(frozen=True)
class ProvenToken(Token):
    """A key known by its secret's hash only: a portal session, which proved the secret when it
    signed in and kept only the hash. Built by the portal alone; ``parse`` (every caller of
    the API) never makes one."""

    proof: str = ""

    @property
    def secret_hash(self) -> str:
        return self.proof


def new_id(length: int) -> str:
    """A random lowercase id."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def mint(team_id: str) -> Token:
    """A fresh token for a new key of ``team_id``."""
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))
    return Token(team_id, new_id(_KEY_ID_LENGTH), secret)


def parse(raw: str) -> Token | None:
    """The parts of a well-formed token, or None."""
    match = _TOKEN.fullmatch(raw)
    return None if match is None else Token(*match.groups())


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)


def new_webhook_secret() -> str:
    """A fresh secret that signs a key's webhooks, in the ``whsec_<base64>`` form receivers
    expect (Standard Webhooks)."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
