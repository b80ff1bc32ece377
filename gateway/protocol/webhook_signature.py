"""fal's webhook signature format, shared by the emulator (which signs) and the gateway (which
verifies): Ed25519 over ``request_id \\n user_id \\n timestamp \\n sha256_hex(body)``, hex-encoded,
in four ``X-Fal-Webhook-*`` headers (fal-protocol.md §6)."""

from __future__ import annotations

import hashlib

REQUEST_ID_HEADER = "X-Fal-Webhook-Request-Id"
USER_ID_HEADER = "X-Fal-Webhook-User-Id"
TIMESTAMP_HEADER = "X-Fal-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Fal-Webhook-Signature"


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """The exact bytes fal signs for one webhook delivery."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()
