"""Sealing: data encrypted and authenticated (AES-GCM) under a secret, as URL-safe text.

File links and upload tokens (``upstream.links``) and the fal keys of the account pool
(``upstream.accounts``) are sealed, each under its own context, so what one seals never opens
as another's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    """Seals and opens data under ``secret`` within ``context``."""

    def __init__(self, secret: bytes, context: bytes) -> None:
        self._context = context
        self._cipher = AESGCM(hashlib.sha256(context + secret).digest())
        self._nonce_key = hashlib.sha256(b"nonce:" + context + secret).digest()

    def seal(self, data: bytes, *, purpose: bytes = b"", deterministic: bool = False) -> str:
        """``data`` sealed, URL-safe; only ``unseal`` with the same ``purpose`` opens it, so a
        token of one kind never passes for another. Deterministic sealing derives the nonce from
        the data (with its own key), so equal data gives equal tokens while different data never
        shares a nonce."""
        if deterministic:
            nonce = hmac.new(self._nonce_key, data, hashlib.sha256).digest()[:_NONCE_BYTES]
        else:
            nonce = os.urandom(_NONCE_BYTES)
        return _b64(nonce + self._cipher.encrypt(nonce, data, self._context + purpose))

    def unseal(self, token: str, *, purpose: bytes = b"") -> bytes | None:
        """What ``seal`` sealed for ``purpose``, or None for anything else."""
        try:
            sealed = _unb64(token)
            return self._cipher.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], self._context + purpose
            )
        except (binascii.Error, ValueError, InvalidTag):
            return None
