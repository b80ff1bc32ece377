"""Sending a call that starts work at fal to an account of the pool, and to another when fal
accepted nothing: the account's key refused (401/402/403: the account is disabled), the
account rate-limited (429: it cools down), no connection opened, or its key not readable here.
A call that failed after its body was sent (a timeout, a broken connection) is never sent
again: fal may have queued it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from gateway.errors import FalError, UpstreamUnreachable
from gateway.upstream.accounts import AccountUnreadable
from gateway.upstream.pool import REFUSED_STATUSES, AccountPool, Credential

SENT_ELSEWHERE = REFUSED_STATUSES | {429}
"""fal's answers that say the account, not the call, was refused."""


async def on_some_account(
    accounts: AccountPool,
    reservation_id: str,
    send: Callable[[Credential], Awaitable[httpx.Response]],
    chosen: Callable[[str], None] = lambda _: None,
) -> tuple[Credential, httpx.Response]:
    """``send`` on an account chosen for ``reservation_id`` (holding one of its slots; none
    for an empty id), and on others while fal refuses the account. ``chosen`` hears of each
    account as it is taken. When every account was tried: fal's last 429 as it answered,
    else why nothing was sent (the pool's refusal, or the connection failure)."""
    tried: list[str] = []
    rate_limited: tuple[Credential, httpx.Response] | None = None
    unreachable: UpstreamUnreachable | None = None
    unreadable: AccountUnreadable | None = None
    while True:
        try:
            credential = await accounts.lease(reservation_id, tried)
        except AccountUnreadable as exc:  # its slot was given back: another account may do
            tried.append(exc.account)
            unreadable = exc
            continue
        except FalError:
            if rate_limited is not None:
                return rate_limited
            if unreachable is not None:
                raise unreachable from None
            if unreadable is not None:
                raise unreadable from None
            raise
        chosen(credential.account)
        try:
            response = await send(credential)
        except UpstreamUnreachable as exc:
            unreachable = exc
        else:
            if response.status_code not in SENT_ELSEWHERE:
                return credential, response
            if response.status_code == 429:
                rate_limited = (credential, response)
        tried.append(credential.account)
        await accounts.release(credential.account, reservation_id)
