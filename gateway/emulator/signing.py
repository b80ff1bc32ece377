"""The emulator's webhook signer: one Ed25519 key, published as a JWKS (format in
``gateway.protocol.webhook_signature``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from gateway.protocol.webhook_signature import (
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_ID_HEADER,
    signed_message,
)


class WebhookSigner:
    """Signs webhook deliveries with one Ed25519 key and publishes it as a JWKS."""

    def __init__(self, private_key: Ed25519PrivateKey, user_id: str) -> None:
        self._key = private_key
        self.user_id = user_id
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def load_or_create(cls, path: Path | None, user_id: str) -> WebhookSigner:
        """Use the PEM key at ``path``, creating it (mode 0600) when absent; no path: a new key."""
        if path is None:
            return cls(Ed25519PrivateKey.generate(), user_id)
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} does not hold an Ed25519 private key")
            return cls(key, user_id)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(pem)
        return cls(key, user_id)

    def headers(self, request_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        """The four ``X-Fal-Webhook-*`` headers for one delivery of ``body``."""
        ts = str(timestamp)
        signature = self._key.sign(signed_message(request_id, self.user_id, ts, body))
        return {
            REQUEST_ID_HEADER: request_id,
            USER_ID_HEADER: self.user_id,
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: signature.hex(),
        }

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set."""
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "EdDSA"})
        return {"keys": [jwk]}
