"""Signing callers' webhooks per the Standard Webhooks spec, with per-key secrets.

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64
HMAC-SHA256 of "id.timestamp.body">``); during a rotation's grace period the old and the new
secret both sign, space-separated, so receivers can switch at their own pace.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)


def new_secret() -> str:
    """A fresh webhook signing secret, in the ``whsec_<base64>`` form receivers expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(
    message_id: str, body: str, signing_secrets: Sequence[str], timestamp: int
) -> dict[str, str]:
    sent_at = datetime.fromtimestamp(timestamp, UTC)
    signatures = [Webhook(secret).sign(message_id, sent_at, body) for secret in signing_secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
