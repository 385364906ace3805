"""Who may see and change what in the console: the viewer of a request and the checks on writes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from wellcar.server.api.console.oidc import OidcClient
from wellcar.server.api.console.session import COOKIE, csrf_token, decode_session
from wellcar.server.auth import Role
from wellcar.server.console_settings import ConsoleAuth

CSRF_FIELD = "csrf"


@dataclass(frozen=True, slots=True)
class ConsoleState:
    auth: ConsoleAuth
    key: bytes  # signs session cookies and CSRF tokens
    oidc: OidcClient | None = None  # with ConsoleAuth.OIDC


@dataclass(frozen=True, slots=True)
class Viewer:
    role: Role
    subject: str
    auth: ConsoleAuth
    csrf: str  # "" in lab mode, which has no session

    @property
    def can_write(self) -> bool:
        return self.role is Role.ADMIN


class SignInRequired(Exception):
    """Nobody is signed in: a page redirects to the sign-in page, a form is refused."""


class WriteRefused(Exception):
    """A viewer (read-only) tried to change something, or a form came from another site."""


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def current_viewer(request: Request) -> Viewer | None:
    state = console_state(request)
    if state.auth is ConsoleAuth.LAB:
        return Viewer(Role.ADMIN, "lab mode", state.auth, "")
    cookie = request.cookies.get(COOKIE)
    session = decode_session(cookie, state.key, request.app.state.clock())
    if session is None or cookie is None:
        return None
    return Viewer(session.role, session.subject, state.auth, csrf_token(cookie, state.key))


def require_viewer(request: Request) -> Viewer:
    viewer = current_viewer(request)
    if viewer is None:
        raise SignInRequired
    return viewer


def _same_origin(request: Request) -> bool:
    # Browsers send Origin on every form POST; a page of another site cannot forge it.
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def require_writer(request: Request, form: FormData) -> Viewer:
    viewer = require_viewer(request)
    if not _same_origin(request):
        raise WriteRefused("this form was sent from another site")
    if viewer.auth is not ConsoleAuth.LAB:
        sent = str(form.get(CSRF_FIELD, ""))
        if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
            raise WriteRefused("this form has expired: reload the page and send it again")
    if not viewer.can_write:
        raise WriteRefused(f"{viewer.subject} may look but not change anything (viewer role)")
    return viewer
