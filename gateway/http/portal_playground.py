"""The portal's playground: a form for each catalog endpoint. Its image and mask are uploaded
through the gateway's own upload flow (counted against the key's upload quota), and the job is
submitted on behalf of the session's key, as a queue job; the browser is then sent to the job's
page, which reloads until the result is there.

The session holds the key's secret hash, never its secret: the job is admitted with that hash
(``ProvenToken``), which no caller of the API can present."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.accounts.keys import ApiKey
from gateway.accounts.tokens import ProvenToken
from gateway.catalog import CATALOG, Endpoint
from gateway.console.pages import page
from gateway.console.playground import (
    PLACEHOLDER_URL,
    FormField,
    example,
    form_fields,
    parameters,
)
from gateway.console.sessions import PORTAL, Session
from gateway.errors import FalError, NotFound, RequestValidationFailed
from gateway.http.pages import require_csrf, signed_in
from gateway.http.portal import area
from gateway.http.services import Services
from gateway.http.storage import granted, send_upload, start_upload
from gateway.jobs.submit import Call
from gateway.web import jsoncodec

STORAGE_TYPE = "fal-cdn-v3"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


def _chosen(endpoint_id: Any) -> Endpoint:
    return CATALOG.get(str(endpoint_id or ""), next(iter(CATALOG.values())))


def _form_page(
    gateway: Services,
    session: Session,
    endpoint: Endpoint,
    values: Mapping[str, Any],
    errors: list[str],
) -> Response:
    fields = form_fields(endpoint)
    return page(
        "portal/playground.html",
        title="Playground",
        **area(session, "/portal/playground"),
        endpoints=list(CATALOG),
        endpoint=endpoint,
        fields=fields,
        values={name: str(value) for name, value in values.items() if isinstance(value, str)},
        problems=errors,
        snippets=example(gateway.settings.public_url, endpoint, values),
    )


async def show(request: Request, gateway: Services, session: Session) -> Response:
    endpoint = _chosen(request.query_params.get("endpoint"))
    return _form_page(gateway, session, endpoint, {}, [])


async def run(request: Request, gateway: Services, session: Session) -> Response:
    form = await require_csrf(request, session)
    endpoint = _chosen(form.get("endpoint"))
    fields = form_fields(endpoint)
    body, errors = parameters(fields, form)
    files = {f.name: form.get(f.name) for f in fields if f.kind == "file"}
    errors += _file_problems(fields, files)
    if not errors:
        placeholders = {name: PLACEHOLDER_URL.format(name=name) for name in files}
        try:
            endpoint.validate({**body, **placeholders})
        except RequestValidationFailed as exc:
            errors += [_message(fields, item) for item in exc.errors]
    if errors:
        return _form_page(gateway, session, endpoint, form, errors)
    key = await gateway.keys.get(session.key_id)
    if key is None:
        raise NotFound("Key not found")
    uploads = {name: f for name, f in files.items() if isinstance(f, UploadFile)}
    try:
        for name, upload in uploads.items():
            body[name] = await _upload(gateway, key, upload)
        token = ProvenToken(session.team_id, session.key_id, proof=session.proof)
        call = Call(token, endpoint, jsoncodec.dumps(body).encode(), {})
        accepted = await gateway.submitter.submit(call, None)
    except RequestValidationFailed as exc:
        errors = [_message(fields, item) for item in exc.errors]
    except FalError as exc:
        errors = [str(exc.detail)]
    else:
        if accepted.response.is_success:
            return RedirectResponse(f"/portal/jobs/{accepted.body['request_id']}", 303)
        errors = [f"fal refused the job: {_detail(accepted.body)}"]
    return _form_page(gateway, session, endpoint, form, errors)


def _file_problems(fields: list[FormField], files: Mapping[str, Any]) -> list[str]:
    problems = []
    labels = {f.name: f.label for f in fields}
    for name, upload in files.items():
        if not isinstance(upload, UploadFile) or not upload.filename or not upload.size:
            problems.append(f"{labels[name]}: choose an image file")
        elif (upload.content_type or "") not in IMAGE_TYPES:
            problems.append(f"{labels[name]}: must be a PNG, JPEG or WebP image")
    return problems


def _message(fields: list[FormField], item: Mapping[str, Any]) -> str:
    """A validation error of the body, named by the form's label for its field."""
    labels = {f.name: f.label for f in fields}
    loc = [str(part) for part in item.get("loc", []) if part != "body"]
    name = labels.get(loc[0], loc[0]) if loc else "Input"
    return f"{name}: {item.get('msg', 'invalid')}"


def _detail(body: Any) -> str:
    detail = body.get("detail") if isinstance(body, dict) else body
    return str(detail)[:300]


async def _upload(gateway: Services, key: ApiKey, upload: UploadFile) -> str:
    """Upload a file as a caller of ``/storage/upload/initiate`` and its ``PUT`` would: its
    gateway file link."""
    content = await upload.read()
    spec = {"file_name": upload.filename or "upload.png", "content_type": upload.content_type}
    status_code, answer = await start_upload(
        gateway, key, STORAGE_TYPE, jsoncodec.dumps(spec).encode()
    )
    if status_code != 200:
        raise FalError(f"The upload was refused: {_detail(answer)}", status_code=502)
    grant = await granted(gateway, answer["upload_url"])

    async def chunks() -> AsyncIterator[bytes]:
        yield content

    response = await send_upload(gateway, grant, len(content), chunks(), upload.content_type)
    if not response.is_success:
        raise FalError(f"The upload failed (fal answered {response.status_code})")
    return str(answer["file_url"])


ROUTES = [
    Route("/portal/playground", signed_in(PORTAL, show), methods=["GET"]),
    Route("/portal/playground", signed_in(PORTAL, run), methods=["POST"]),
]
