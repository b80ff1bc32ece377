"""Browser sessions of the console and the portal, in sealed cookies.

A cookie holds who signed in (the operator, or one gateway key by its id and secret hash),
when the session ends, and its CSRF token, sealed with AES-GCM under the link secret: it
cannot be read or forged, and it never holds the admin token or a key's secret. Every request
checks it against the store again, so rotating the admin token or revoking the key ends the
session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.web.sealing import Sealer

CONTEXT = b"fal-gateway browser session v1"
SESSION_SECONDS = 8 * 3600
CONSOLE = "console"
PORTAL = "portal"


class Session(BaseModel):
    """What a session cookie holds."""

    role: str
    """``console`` (the operator) or ``portal`` (a customer's key)."""
    subject: str
    """The operator: a hash of the admin token; a key: ``<team>/<key id>``."""
    proof: str
    """The key's secret hash (portal); empty for the operator."""
    csrf: str
    expires: float

    @property
    def team_id(self) -> str:
        return self.subject.split("/", 1)[0]

    @property
    def key_id(self) -> str:
        return self.subject.split("/", 1)[1]


def token_digest(token: str) -> str:
    """What a console session remembers of the admin token: enough to tell it changed."""
    return hashlib.sha256(b"console:" + token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Cookies:
    """Reads and writes one role's session cookie."""

    sealer: Sealer
    secure: bool

    @classmethod
    def of(cls, secret: bytes, public_url: str) -> Cookies:
        return cls(Sealer(secret, CONTEXT), public_url.startswith("https://"))

    @staticmethod
    def name(role: str) -> str:
        return f"fgw_{role}"

    def start(self, response: Response, role: str, subject: str, proof: str = "") -> Session:
        """A new session for ``subject``, set on ``response``."""
        session = Session(
            role=role,
            subject=subject,
            proof=proof,
            csrf=secrets.token_urlsafe(24),
            expires=time.time() + SESSION_SECONDS,
        )
        sealed = self.sealer.seal(session.model_dump_json().encode(), purpose=role.encode())
        response.set_cookie(
            self.name(role),
            sealed,
            max_age=SESSION_SECONDS,
            path=f"/{role}",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        return session

    def read(self, request: Request, role: str) -> Session | None:
        """The request's unexpired session of ``role``, if its cookie is one of ours."""
        sealed = request.cookies.get(self.name(role))
        opened = self.sealer.unseal(sealed, purpose=role.encode()) if sealed else None
        if opened is None:
            return None
        try:
            session = Session.model_validate_json(opened)
        except ValidationError:
            return None
        return session if session.role == role and session.expires > time.time() else None

    def end(self, response: Response, role: str) -> None:
        response.delete_cookie(
            self.name(role), path=f"/{role}", secure=self.secure, httponly=True, samesite="strict"
        )


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether a form carried the session's CSRF token."""
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
