"""fal's storage through the gateway: callers upload inputs without ever holding the fal key.

``POST /storage/upload/initiate`` (both storage types fal's clients ask for) is passed to fal with
the reseller's key; the ``upload_url`` handed back is the gateway's own, carrying a sealed,
expiring token that names fal's upload URL and the key the bytes count against; ``file_url`` is a
gateway file link. The ``PUT`` to that URL (fal-js sends it without credentials) streams the bytes
to fal, as long as that key is still active. Each key's uploads count against its
``upload_quota_bytes``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounts.keys import ApiKey
from gateway.errors import FalError, Forbidden, NotFound, PayloadTooLarge, UpstreamError
from gateway.http.access import check_browser_origin
from gateway.http.services import Services, services
from gateway.upstream.client import json_body
from gateway.upstream.failover import on_some_account
from gateway.upstream.links import UPLOAD_GRANT
from gateway.web.jsoncodec import JSONResponse

UPLOAD_TOKEN_LIFETIME = 3600.0
UPLOAD_PATH = "/storage/upload/"


def _quota_exceeded() -> PayloadTooLarge:
    return PayloadTooLarge("This key's upload quota is used up", error_type="upload_quota")


async def initiate(request: Request) -> Response:
    gateway = services(request)
    key = await gateway.keys.authenticate(request.headers.get("authorization"))
    await check_browser_origin(gateway, request)
    storage_type = request.query_params.get("storage_type", "fal-cdn-v3")
    status_code, answer = await start_upload(gateway, key, storage_type, await request.body())
    return JSONResponse(answer, status_code=status_code)


async def start_upload(
    gateway: Services, key: ApiKey, storage_type: str, content: bytes
) -> tuple[int, Any]:
    """fal's answer to an upload's initiation for ``key`` (already authenticated), with its
    ``upload_url`` the gateway's own (sealing the grant) and ``file_url`` a gateway link; 413
    once the key's upload quota is used up."""
    quota = key.limits.get("upload_quota_bytes")
    if quota is not None and key.uploaded_bytes >= quota:
        raise _quota_exceeded()
    credential, response = await on_some_account(
        gateway.accounts,
        "",
        lambda credential: gateway.upstream.initiate_upload(credential, storage_type, content),
    )
    gateway.upstream.check("upload_initiate", response, credential.account)
    body = json_body(response)
    if not response.is_success or not isinstance(body, dict) or "upload_url" not in body:
        return response.status_code, body
    grant = UploadGrant(
        url=body["upload_url"],
        team=key.team_id,
        key=key.id,
        account=credential.account,
        expires=time.time() + UPLOAD_TOKEN_LIFETIME,
    )
    token = gateway.links.seal(grant.model_dump_json().encode(), purpose=UPLOAD_GRANT)
    answer = {**body, "upload_url": f"{gateway.links.public_url}{UPLOAD_PATH}{token}"}
    if isinstance(body.get("file_url"), str):
        answer["file_url"] = gateway.links.link_if_upstream(body["file_url"])
    return 200, answer


class UploadGrant(BaseModel):
    """What an upload URL's token holds: fal's upload URL, the key the bytes count against and
    the fal account that handed the URL out (the bytes go to its storage)."""

    model_config = ConfigDict(frozen=True)

    url: str
    team: str
    key: str
    account: str = ""
    expires: float


async def _grant(gateway: Services, token: str) -> UploadGrant:
    """The grant behind an upload token: 404 unless this gateway sealed it as an upload token
    and it has not expired, 403 once the key it was issued to is revoked or expired."""
    sealed = gateway.links.unseal(token, purpose=UPLOAD_GRANT)
    try:
        grant = UploadGrant.model_validate_json(sealed or b"")
    except ValidationError:
        raise NotFound("Upload not found or expired") from None
    if grant.expires < time.time():
        raise NotFound("Upload not found or expired")
    if not await gateway.keys.usable(grant.team, grant.key):
        raise Forbidden(
            "The key this upload URL was issued to is no longer active", error_type="upload_revoked"
        )
    return grant


async def put(request: Request) -> Response:
    gateway = services(request)
    grant = await _grant(gateway, request.path_params["token"])
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise FalError(
            "Uploads need a Content-Length", status_code=411, error_type="length_required"
        )
    size = int(declared)

    async def content() -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in request.stream():
            sent += len(chunk)
            if sent > size:
                raise PayloadTooLarge("More bytes than Content-Length announced")
            yield chunk

    try:
        response = await send_upload(
            gateway, grant, size, content(), request.headers.get("content-type")
        )
    except UpstreamError as exc:
        if await request.is_disconnected():
            raise ClientDisconnect from exc  # the uploader hung up; fal did nothing wrong
        raise
    return Response(
        response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type"),
    )


async def granted(gateway: Services, upload_url: str) -> UploadGrant:
    """The grant behind one of the gateway's own upload URLs (as ``start_upload`` gave it)."""
    return await _grant(gateway, upload_url.rsplit(UPLOAD_PATH, 1)[-1])


async def send_upload(
    gateway: Services,
    grant: UploadGrant,
    size: int,
    content: AsyncIterator[bytes],
    content_type: str | None,
) -> httpx.Response:
    """Stream ``size`` bytes to fal's upload URL of ``grant``, counted against its key's
    upload quota (413 when they do not fit; given back when fal does not take them)."""
    if not await gateway.keys.reserve_upload(grant.team, grant.key, size):
        raise _quota_exceeded()
    try:
        async with gateway.upstream.upload(
            grant.account, grant.url, content, content_type
        ) as response:
            await response.aread()
    except BaseException:
        await gateway.keys.release_upload(grant.team, grant.key, size)
        raise
    if not response.is_success:
        await gateway.keys.release_upload(grant.team, grant.key, size)
    return response


ROUTES = [
    Route("/storage/upload/initiate", initiate, methods=["POST"]),
    Route("/storage/upload/{token}", put, methods=["PUT"]),
]
