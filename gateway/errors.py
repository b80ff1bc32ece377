"""Errors in fal's shapes, and the one place that renders them to HTTP.

Exception tree::

    FalError                      {"detail": "...", "error_type": "..."}
     ├── BadRequest               400
     ├── Unauthorized             401
     ├── PaymentRequired          402, out of credit or over a spending cap
     ├── Forbidden                403
     ├── NotFound                 404
     ├── PayloadTooLarge          413
     ├── RequestValidationFailed  422, {"detail": [{"loc", "msg", "type"}, ...]}
     ├── RateLimited              429, with Retry-After and RateLimit-* headers when known
     ├── ServiceUnavailable       5xx chosen by the raiser (injected faults, runner trouble)
     ├── StoreUnavailable         503 with Retry-After, the gateway's Redis cannot serve now
     └── UpstreamError            502, fal answered with an error of its own or not at all
          ├── UpstreamUnavailable 502, connection refused or broken
          └── UpstreamTimeout     504, fal did not answer in time

fal answers model and infrastructure errors with a flat ``detail``/``error_type`` body and an
``X-Fal-Error-Type`` header, and validation errors with a pydantic-style ``detail`` list
(``fal-protocol.md`` §4). Every handler raises one of these; ``install_error_handlers`` maps them,
to fal's JSON, or to an HTML page for a browser's page (the console's and portal's) when the app
gives it a ``PageErrors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.web.jsoncodec import JSONResponse

ErrorItem = dict[str, Any]
CLIENT_CLOSED_REQUEST = 499


class FalError(Exception):
    """Base of every error answered in fal's shape."""

    status_code: int = 500
    error_type: str = "internal_server_error"

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body fal would send for this error."""
        return {"detail": self.detail, "error_type": self.error_type}


class BadRequest(FalError):
    status_code = 400
    error_type = "bad_request"


INVALID_KEY = "Invalid or missing API key"
"""The one message for every refused gateway key, so a caller learns nothing about which check
failed."""


class Unauthorized(FalError):
    status_code = 401
    error_type = "unauthorized"


class PaymentRequired(FalError):
    status_code = 402
    error_type = "insufficient_credit"


class RateLimited(FalError):
    status_code = 429
    error_type = "rate_limited"


class Forbidden(FalError):
    status_code = 403
    error_type = "forbidden"


class NotFound(FalError):
    status_code = 404
    error_type = "not_found"


class PayloadTooLarge(FalError):
    status_code = 413
    error_type = "request_too_large"


class ServiceUnavailable(FalError):
    status_code = 503
    error_type = "runner_scheduling_failure"


class StoreUnavailable(FalError):
    """Answered with ``Retry-After``: a Redis restart, failover or load is over in seconds."""

    status_code = 503
    error_type = "gateway_unavailable"

    def __init__(self, detail: str, **options: Any) -> None:
        super().__init__(detail, **options)
        self.headers.setdefault("Retry-After", "1")


class UpstreamError(FalError):
    status_code = 502
    error_type = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    error_type = "upstream_unavailable"


class UpstreamUnreachable(UpstreamUnavailable):
    """No connection to fal could be opened: nothing of the call was sent."""


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"


class RequestValidationFailed(FalError):
    """A body that does not fit the endpoint's input model: 422 with fal's ``detail`` list."""

    status_code = 422
    error_type = "validation_error"

    def __init__(self, errors: Sequence[ErrorItem]) -> None:
        super().__init__("Request validation failed")
        self.errors = list(errors)

    def body(self) -> dict[str, Any]:
        return {"detail": self.errors}

    @property
    def messages(self) -> str:
        """Every error's message, as one line for people (a page, a form)."""
        return "; ".join(str(item.get("msg", "")) for item in self.errors)

    @classmethod
    def from_pydantic(cls, exc: ValidationError, root: str = "body") -> RequestValidationFailed:
        """Convert pydantic's errors, rooting every ``loc`` at ``body`` (or ``query``) as fal
        (FastAPI) does."""
        errors = exc.errors(include_url=False, include_input=False)
        return cls([_error_item(err, root) for err in errors])


def _error_item(err: Mapping[str, Any], root: str) -> ErrorItem:
    item: ErrorItem = {"loc": [root, *err["loc"]], "msg": err["msg"], "type": err["type"]}
    ctx = err.get("ctx")
    if ctx:
        # ctx can hold exception objects (e.g. from custom validators); keep it JSON-safe.
        item["ctx"] = {
            k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in ctx.items()
        }
    return item


def error_response(exc: FalError) -> Response:
    """Render a ``FalError`` as fal would: JSON body plus ``X-Fal-Error-Type``."""
    headers = {"X-Fal-Error-Type": exc.error_type, **exc.headers}
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def _from_http_exception(exc: HTTPException) -> FalError:
    """Starlette's own 404/405s, in fal's shape rather than plain text."""
    error_type = "not_found" if exc.status_code == 404 else "bad_request"
    return FalError(
        exc.detail, status_code=exc.status_code, error_type=error_type, headers=exc.headers
    )


async def _handle_disconnect(request: Request, exc: Exception) -> Response:
    """The client hung up before its body was read: nothing to answer, nothing to log. The
    status is nginx's "client closed request", for the metrics."""
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def no_such_route(request: Request) -> Response:
    """Catch-all handler: unknown paths are 404 in fal's shape, whatever the method."""
    raise NotFound("Not Found")


PageErrors = Callable[[Request, FalError], Awaitable[Response | None]]
"""An error as an HTML page when the request was for one, else None (fal's JSON then)."""


def install_error_handlers(app: Starlette, pages: PageErrors | None = None) -> None:
    """Map every ``FalError`` raised by a handler to its response: fal's JSON, or the page
    ``pages`` renders for it."""

    async def render(request: Request, exc: FalError) -> Response:
        page = await pages(request, exc) if pages is not None else None
        return page if page is not None else error_response(exc)

    async def handle_fal_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FalError)
        return await render(request, exc)

    async def handle_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return await render(request, _from_http_exception(exc))

    app.add_exception_handler(FalError, handle_fal_error)
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_exception_handler(ClientDisconnect, _handle_disconnect)
