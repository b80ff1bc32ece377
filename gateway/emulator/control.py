"""The emulator's own control surface under ``/_emulator`` (not part of fal's API).

- ``GET /_emulator/requests[?since=N]``: every request received (method, path, query, status,
  body up to 64 KiB, a fingerprint of the key used, the ``X-Fal-Tags`` pairs fal would keep),
  so tests can prove what reached "fal".
- ``DELETE /_emulator/requests``: forget them.
- ``GET /_emulator/knobs`` and ``PATCH /_emulator/knobs``: read or change behaviour knobs live.
- ``GET /_emulator/webhooks``: recent webhook delivery attempts and their outcomes.

These need a key the emulator accepts, like every fal call.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.emulator.auth import credential, fingerprint
from gateway.emulator.routes_queue import emulator_of
from gateway.errors import BadRequest, RequestValidationFailed
from gateway.settings import EmulatorKnobs
from gateway.upstream.fal_billing import TAGS_HEADER, parse_tags

CONTROL_PREFIX = "/_emulator"
BODY_LOG_LIMIT = 64 * 1024


class RequestLog:
    """The last ``size`` requests, each numbered so a reader can ask for what came since."""

    def __init__(self, size: int = 10_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._next = 0

    def record(self, entry: dict[str, Any]) -> None:
        entry["seq"] = self._next
        self._next += 1
        self._entries.append(entry)

    def since(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self._entries if e["seq"] >= seq]

    @property
    def next_seq(self) -> int:
        return self._next

    def clear(self) -> None:
        self._entries.clear()


class RequestLogMiddleware:
    """Records each request outside ``/_emulator`` once its response is sent."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        status: list[int] = []

        async def logged_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < BODY_LOG_LIMIT:
                body.extend(message.get("body", b"")[: BODY_LOG_LIMIT - len(body)])
            return message

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        started = time.time()
        try:
            await self.app(scope, logged_receive, logged_send)
        finally:
            self.log.record(_entry(scope, bytes(body), status[0] if status else None, started))


def _entry(scope: Scope, body: bytes, status: int | None, started: float) -> dict[str, Any]:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    key = credential(headers.get("authorization"))
    return {
        "time": started,
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "status": status,
        "body": body.decode("utf-8", errors="replace"),
        "key_fingerprint": None if key is None else fingerprint(key),
        "tags": parse_tags(headers.get(TAGS_HEADER)),
    }


async def list_requests(request: Request) -> Response:
    emulator_of(request)
    log: RequestLog = request.app.state.request_log
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError as exc:
        raise BadRequest("since must be an integer") from exc
    return JSONResponse({"requests": log.since(since), "next": log.next_seq})


async def clear_requests(request: Request) -> Response:
    emulator_of(request)
    request.app.state.request_log.clear()
    return Response(status_code=204)


async def get_knobs(request: Request) -> Response:
    return JSONResponse(emulator_of(request).knobs.model_dump())


async def patch_knobs(request: Request) -> Response:
    emulator = emulator_of(request)
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise BadRequest("Body must be a JSON object of knob values")
        knobs = EmulatorKnobs.model_validate({**emulator.knobs.model_dump(), **changes})
    except ValidationError as exc:
        raise RequestValidationFailed.from_pydantic(exc) from exc
    except ValueError as exc:
        raise BadRequest("Body must be JSON") from exc
    await emulator.set_knobs(knobs)
    return JSONResponse(emulator.knobs.model_dump())


async def list_webhooks(request: Request) -> Response:
    return JSONResponse({"attempts": list(emulator_of(request).webhooks.attempts)})


ROUTES = [
    Route(f"{CONTROL_PREFIX}/requests", list_requests, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/requests", clear_requests, methods=["DELETE"]),
    Route(f"{CONTROL_PREFIX}/knobs", get_knobs, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/knobs", patch_knobs, methods=["PATCH"]),
    Route(f"{CONTROL_PREFIX}/webhooks", list_webhooks, methods=["GET"]),
]
