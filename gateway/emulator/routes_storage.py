"""Storage (``rest.fal.ai``): upload initiation, the upload itself, served files and the JWKS."""

from __future__ import annotations

import json
import uuid
from pathlib import PurePosixPath
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.emulator.routes_queue import base_url, paying_caller
from gateway.emulator.service import Emulator
from gateway.errors import BadRequest, NotFound, PayloadTooLarge

_DEFAULT_CONTENT_TYPE = "application/octet-stream"


async def initiate_upload(request: Request) -> Response:
    """``POST /storage/upload/initiate``: answer where to PUT the bytes and where they will live.

    Both storage types fal's clients ask for (``fal-cdn-v3`` from fal-js, ``gcs`` from fal-client)
    are served the same way. A locked account is refused, as fal refuses it.
    """
    emulator, _ = paying_caller(request)
    try:
        spec = json.loads(await request.body() or b"{}")
    except ValueError as exc:  # not JSON, or not UTF-8
        raise BadRequest("Body must be JSON with file_name and content_type") from exc
    if not isinstance(spec, dict):
        raise BadRequest("Body must be a JSON object")
    file_name = PurePosixPath(str(spec.get("file_name") or "upload.bin")).name or "upload.bin"
    content_type = str(spec.get("content_type") or _DEFAULT_CONTENT_TYPE)
    token = uuid.uuid4().hex
    path = emulator.uploads.initiate(token, file_name, content_type)
    base = base_url(request, emulator)
    return JSONResponse(
        {"upload_url": f"{base}/storage/upload/{token}", "file_url": f"{base}/files/{quote(path)}"}
    )


async def _read_capped(request: Request, emulator: Emulator) -> bytes:
    limit = emulator.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Uploads are limited to {limit} bytes", error_type="file_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"Uploads are limited to {limit} bytes", error_type="file_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def put_upload(request: Request) -> Response:
    """The PUT to an ``upload_url``; unauthenticated, as fal-js sends it without credentials."""
    emulator: Emulator = request.app.state.emulator
    content = await _read_capped(request, emulator)
    path = emulator.uploads.complete(
        request.path_params["token"], content, request.headers.get("content-type")
    )
    if path is None:
        raise NotFound("Upload not found or expired")
    return Response(status_code=200)


async def get_file(request: Request) -> Response:
    emulator: Emulator = request.app.state.emulator
    stored = emulator.files.get(request.path_params["path"])
    if stored is None:
        raise NotFound("File not found")
    return Response(stored.content, media_type=stored.content_type)


async def jwks(request: Request) -> Response:
    emulator: Emulator = request.app.state.emulator
    return JSONResponse(emulator.signer.jwks(), headers={"Cache-Control": "max-age=3600"})


ROUTES = [
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/storage/upload/initiate", initiate_upload, methods=["POST"]),
    Route("/storage/upload/{token}", put_upload, methods=["PUT"]),
    Route("/files/{path:path}", get_file, methods=["GET"]),
]
