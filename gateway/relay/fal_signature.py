"""Verifying fal's webhooks: Ed25519 signature, against keys from fal's JWKS, within ±5 minutes.

fal's JWKS is fetched once and cached; when no cached key verifies a webhook the set is fetched
again (at most every ``REFRESH_INTERVAL``), so a key rotation at fal is picked up by itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from jwt.exceptions import InvalidKeyError

from gateway.protocol.webhook_signature import (
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_ID_HEADER,
    signed_message,
)

REFRESH_INTERVAL = 30.0
CACHE_LIFETIME = 24 * 3600.0
_SECONDS = re.compile(r"[0-9]{1,12}")
"""A Unix time in seconds, as fal sends it: ASCII digits only, short enough to be a float."""


class WebhookRejected(Exception):
    """A webhook that is not verifiably fal's, or not fresh."""


class FalKeys:
    """fal's webhook public keys, cached."""

    def __init__(self, client: httpx.AsyncClient, jwks_url: str) -> None:
        self._client = client
        self._url = jwks_url
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, refresh: bool = False) -> list[Ed25519PublicKey]:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = not self._keys or age > CACHE_LIFETIME
            if stale or (refresh and age > REFRESH_INTERVAL):
                await self._fetch()
            return self._keys

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._url, timeout=10)
            response.raise_for_status()
            documents = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError, AttributeError):
            return  # keep what we had; verification fails closed without keys
        keys = []
        for jwk in documents:
            try:
                key = OKPAlgorithm.from_jwk(json.dumps(jwk))
            except (InvalidKeyError, ValueError, TypeError):
                continue
            if isinstance(key, Ed25519PublicKey):
                keys.append(key)
        self._keys, self._fetched_at = keys, time.monotonic()


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


async def verify(keys: FalKeys, headers: Mapping[str, str], body: bytes, tolerance: float) -> str:
    """The request id of a genuine, fresh fal webhook; ``WebhookRejected`` otherwise."""
    try:
        request_id = headers[REQUEST_ID_HEADER]
        user_id = headers[USER_ID_HEADER]
        timestamp = headers[TIMESTAMP_HEADER]
        signature = bytes.fromhex(headers[SIGNATURE_HEADER])
    except (KeyError, ValueError) as exc:
        raise WebhookRejected("missing or malformed X-Fal-Webhook-* headers") from exc
    if not _SECONDS.fullmatch(timestamp):
        raise WebhookRejected("malformed X-Fal-Webhook-Timestamp")
    if abs(time.time() - int(timestamp)) > tolerance:
        raise WebhookRejected("webhook timestamp is outside the accepted window")
    message = signed_message(request_id, user_id, timestamp, body)
    if _verifies(await keys.get(), signature, message):
        return request_id
    if _verifies(await keys.get(refresh=True), signature, message):
        return request_id
    raise WebhookRejected("webhook signature does not verify")
