"""The portal's playground: a form for each catalog endpoint. Its image and mask are uploaded
through the gateway's own upload flow (counted against the key's upload quota), and the job is
submitted on behalf of the session's key, as a queue job; the browser is then sent to the job's
page, which reloads until the result is there.

The session holds the key's secret hash, never its secret: the job is admitted with that hash
(``ProvenToken``), which no caller of the API can present."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeGuard

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
    Problem,
    compacted,
    example,
    opened,
    placed,
    problems,
    read,
)
from gateway.console.playground_form import Form, form_of
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
SHOWN_CODE = (
    "The code below makes the call this form describes. To run it, choose the images again."
)


def _chosen(endpoint_id: Any) -> Endpoint:
    return CATALOG.get(str(endpoint_id or ""), next(iter(CATALOG.values())))


def _form_page(
    gateway: Services,
    session: Session,
    endpoint: Endpoint,
    posted: Mapping[str, Any],
    problems: list[Problem],
    notice: str | None = None,
) -> Response:
    form = form_of(endpoint)
    values = {name: value for name, value in posted.items() if isinstance(value, str)}
    files = [f.name for f in form.files if _is_file(posted.get(f.name))]
    return page(
        "portal/playground.html",
        title="Playground",
        **area(session, "/portal/playground"),
        endpoints=list(CATALOG),
        form=form,
        values=values,
        problems=problems,
        inline={p.control: p.msg for p in problems if p.control is not None},
        opened=opened(form, values, problems),
        snippets=example(gateway.settings.public_url, endpoint, values, files),
        notice=notice,
    )


async def show(request: Request, gateway: Services, session: Session) -> Response:
    endpoint = _chosen(request.query_params.get("endpoint"))
    return _form_page(gateway, session, endpoint, {}, [])


async def run(request: Request, gateway: Services, session: Session) -> Response:
    sent = await require_csrf(request, session)
    endpoint = _chosen(sent.get("endpoint"))
    form = form_of(endpoint)
    posted = compacted(form, sent)
    reading = read(form, posted)
    uploads = {f.name: upload for f in form.files if _is_file(upload := posted.get(f.name))}
    found = _file_problems(form, uploads)
    # The body is checked with a placeholder URL for each file before anything is uploaded.
    will_have = [f.name for f in form.files if f.required or f.name in uploads]
    links = {name: PLACEHOLDER_URL.format(name=name) for name in will_have}
    found += problems(form, reading, links, gateway.settings.max_data_uri_bytes)
    if posted.get("action") == "code":  # the code for these values, nothing run
        wrong = [p for p in found if p.control not in {f.name for f in form.files}]
        return _form_page(gateway, session, endpoint, posted, wrong, SHOWN_CODE)
    if found:
        return _form_page(gateway, session, endpoint, posted, found)
    key = await gateway.keys.get(session.key_id)
    if key is None:
        raise NotFound("Key not found")
    body = dict(reading.body)
    try:
        for name, upload in uploads.items():
            body[name] = await _upload(gateway, key, upload)
        token = ProvenToken(session.team_id, session.key_id, proof=session.proof)
        call = Call(token, endpoint, jsoncodec.dumps(body).encode(), {})
        accepted = await gateway.submitter.submit(call, None)
    except RequestValidationFailed as exc:
        found = placed(form, reading, exc.errors)
    except FalError as exc:
        found = [Problem("The job", str(exc.detail), "", None)]
    else:
        if accepted.response.is_success:
            return RedirectResponse(f"/portal/jobs/{accepted.body['request_id']}", 303)
        found = [Problem("fal refused the job", _detail(accepted.body), "", None)]
    return _form_page(gateway, session, endpoint, posted, found)


def _is_file(value: Any) -> TypeGuard[UploadFile]:
    """Whether a sent form's value is a chosen file (an empty file input sends a nameless one)."""
    return isinstance(value, UploadFile) and bool(value.filename) and bool(value.size)


def _file_problems(form: Form, uploads: Mapping[str, UploadFile]) -> list[Problem]:
    found = []
    for field in form.files:
        upload = uploads.get(field.name)
        loc = f"body.{field.name}"
        if upload is None and field.required:
            found.append(Problem(field.label, "choose an image file", loc, field.name))
        elif upload is not None and (upload.content_type or "") not in IMAGE_TYPES:
            msg = "must be a PNG, JPEG or WebP image"
            found.append(Problem(field.label, msg, loc, field.name))
    return found


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
