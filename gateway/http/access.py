"""Who may call: a gateway key proven valid, from an origin its policy allows, before any work.

Submits and sync runs check the key before their body is read, so a made-up key costs the
gateway one cached lookup, not the reading of a large body or the resolving of a webhook host.
Every route a key can call refuses a browser origin its policy does not allow.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.accounts import tokens
from gateway.accounts.keys import parse_authorization
from gateway.accounts.tokens import Token
from gateway.errors import StoreUnavailable
from gateway.http.services import Services
from gateway.policy.cache import StalePolicy
from gateway.policy.checks import check_origin


async def allowed_caller(svc: Services, request: Request) -> Token:
    """The caller's key: 401 unless it exists with this secret, 403 from an origin its policy
    does not allow (as it is now, not as cached). Revocation and expiry are checked where the
    call is admitted."""
    token = parse_authorization(request.headers.get("authorization"))
    secret_hash = tokens.hash_secret(token.secret)
    for _ in range(2):
        rules = await svc.policies.rules(token.team_id, token.key_id, secret_hash)
        try:
            async with svc.policies.checking(token.team_id, token.key_id, rules):
                check_origin(rules.effective(), request.headers.get("origin"))
        except StalePolicy:
            svc.policies.forget(token.team_id, token.key_id)
            continue
        return token
    raise StoreUnavailable("The key's policy is changing; try again")


async def check_browser_origin(svc: Services, request: Request) -> None:
    """For a call that names its origin (a browser's), 403 unless the key's policy allows it."""
    if "origin" in request.headers:
        await allowed_caller(svc, request)
