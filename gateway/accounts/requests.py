"""Which key and team own each forwarded request; other keys are told it does not exist."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from gateway.accounts.keys import KEY_CHECK_FIELDS, parse_authorization, verify_key
from gateway.catalog import Endpoint
from gateway.errors import NotFound
from gateway.store import redis_keys
from gateway.store.multiplexed import Store, hash_reply
from gateway.store.pool import store_errors
from gateway.web import jsoncodec

_MAX_REQUEST_ID = 128
STARTED = "started_ms"
"""The record's field for when the gateway first saw fal report the job running."""
CANCEL_ASKED = "cancel_ms"
"""The record's field for when the job's caller first asked to cancel it."""


@dataclass(frozen=True)
class OwnedRequest:
    id: str
    key_id: str
    team_id: str
    app_id: str
    endpoint_id: str
    created_at: float
    reservation_id: str
    settled: bool
    webhook: bool
    """The caller asked for a webhook; its URL is on the reservation (``finish.lua`` reads it)."""
    final_status: dict[str, Any] | None
    """What fal's status said once the request was COMPLETED, when the gateway has learnt it."""
    account: str = ""
    """The fal account that took the request, which serves every later call for it (empty:
    recorded before the pool of accounts, the first account of ``GATEWAY_FAL_KEY``)."""
    started_at: float | None = None
    """When the gateway first saw fal report it running (None: not seen, e.g. nobody polled)."""
    ended_at: float | None = None
    """When the gateway recorded its end."""
    cancel_asked: bool = False
    """Its caller asked to cancel it (``jobs.status``)."""


class RequestRegistry:
    """Request ownership records, kept for ``retention`` seconds after submit."""

    def __init__(self, store: Store, retention: float) -> None:
        self._store = store
        self._retention = int(retention)

    async def record(
        self,
        team_id: str,
        key_id: str,
        request_id: str,
        endpoint: Endpoint,
        reservation_id: str,
        account: str,
        webhook_url: str | None = None,
    ) -> None:
        """Remember who owns ``request_id`` and the fal account it is on, and bind its
        reservation to it (one round trip)."""
        name = redis_keys.request_record(team_id, request_id)
        fields: dict[str, str] = {
            "key_id": key_id,
            "app_id": endpoint.app_id,
            "endpoint_id": endpoint.id,
            "created_at": repr(time.time()),
            "reservation": reservation_id,
            "settled": "0",
            "account": account,
        }
        if webhook_url:
            fields["webhook"] = "1"
        reservation = redis_keys.reservation(team_id, reservation_id)
        async with store_errors():
            await self._store.execute(
                [
                    ("MULTI",),
                    ("HSET", name, *itertools.chain.from_iterable(fields.items())),
                    ("EXPIRE", name, self._retention),
                    (
                        "HSET",
                        reservation,
                        "request_id",
                        request_id,
                        "webhook_url",
                        webhook_url or "",
                        "account",
                        account,
                    ),
                    ("EXEC",),
                ]
            )

    async def authorize(
        self, authorization: str | None, app_id: str, request_id: str
    ) -> OwnedRequest:
        """Check the caller's key and that it owns ``request_id`` under ``app_id``, in one round
        trip. Someone else's request, or one under another app, is a 404 like an unknown one."""
        token = parse_authorization(authorization)
        key_name = redis_keys.key_record(token.team_id, token.key_id)
        request_name = redis_keys.request_record(token.team_id, request_id[:_MAX_REQUEST_ID])
        async with store_errors():
            key_values, request_reply = await self._store.execute(
                [("HMGET", key_name, *KEY_CHECK_FIELDS), ("HGETALL", request_name)]
            )
        verify_key(token, dict(zip(KEY_CHECK_FIELDS, key_values, strict=True)), time.time())
        request_fields = hash_reply(request_reply)
        if (
            len(request_id) > _MAX_REQUEST_ID
            or request_fields.get("key_id") != token.key_id
            or request_fields.get("app_id") != app_id
        ):
            raise NotFound("Request not found")
        return _owned(request_id, token.team_id, request_fields)

    async def of_key(self, team_id: str, key_id: str, request_id: str) -> OwnedRequest:
        """A request of a key already proven (a portal session's): another key's request is a
        404 like an unknown one, as for ``authorize``."""
        owned = await self.lookup(team_id, request_id)
        if owned is None or owned.key_id != key_id:
            raise NotFound("Request not found")
        return owned

    async def lookup(self, team_id: str, request_id: str) -> OwnedRequest | None:
        """A request of ``team_id`` by id, whoever owns it (for fal's webhooks)."""
        if len(request_id) > _MAX_REQUEST_ID:
            return None
        async with store_errors():
            fields = hash_reply(
                await self._store.call("HGETALL", redis_keys.request_record(team_id, request_id))
            )
        return _owned(request_id, team_id, fields) if fields else None


def _owned(request_id: str, team_id: str, fields: dict[str, str]) -> OwnedRequest:
    return OwnedRequest(
        id=request_id,
        key_id=fields["key_id"],
        team_id=team_id,
        app_id=fields["app_id"],
        endpoint_id=fields["endpoint_id"],
        created_at=float(fields["created_at"]),
        reservation_id=fields.get("reservation", ""),
        settled=fields.get("settled") == "1",
        # Records written before the URL moved to the reservation only (issue 14) hold it.
        webhook=fields.get("webhook") == "1" or bool(fields.get("webhook_url")),
        final_status=_final_status(request_id, fields.get("final_status")),
        account=fields.get("account", ""),
        started_at=_seconds(fields.get(STARTED)),
        ended_at=_seconds(fields.get("ended_ms")),
        cancel_asked=bool(fields.get(CANCEL_ASKED)),
    )


def _seconds(milliseconds: str | None) -> float | None:
    return int(milliseconds) / 1000 if milliseconds else None


_REBUILT: dict[str, Any] = {"status": "COMPLETED", "logs": None, "metrics": {}}
"""What every final status the gateway keeps says (only COMPLETED ones are kept, without logs),
so the record need not: with the request id and the queue URLs (which
``Links.rewrite_queue_body`` sets anyway), these are left out of the stored form."""
_URLS = frozenset({"response_url", "status_url", "cancel_url"})


def stored_status(request_id: str, status: dict[str, Any]) -> str:
    """fal's final status as the request record keeps it: only what cannot be rebuilt, so the
    value stays under Redis' 64-byte compact-encoding limit (``{}`` for a webhook's end,
    ``{"metrics":{"inference_time":1.27}}`` for a poll's; a failure's error text may pass it)."""
    kept = {
        name: value
        for name, value in status.items()
        if name not in _URLS
        and not (name == "request_id" and value == request_id)
        and not (name in _REBUILT and value == _REBUILT[name])
    }
    return jsoncodec.dumps(kept)


def _final_status(request_id: str, text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = jsoncodec.loads(text)
    if not isinstance(value, dict):
        return None
    return {**_REBUILT, "request_id": request_id, **value}
