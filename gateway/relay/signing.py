"""Signing callers' webhooks per the Standard Webhooks spec, with per-key secrets (minted by
``accounts.tokens.new_webhook_secret``).

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64
HMAC-SHA256 of "id.timestamp.body">``); during a rotation's grace period the old and the new
secret both sign, space-separated, so receivers can switch at their own pace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook


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
