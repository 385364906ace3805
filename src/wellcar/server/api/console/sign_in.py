"""Signing in to the console, and signing out.

With `--console-auth token` a person sends the server's admin or read-only token once, in
a form; with `oidc` the browser goes to the provider (oidc.py) and comes back. Either
way the browser then holds a signed session cookie (HttpOnly, SameSite=Strict), never a
token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from wellcar.server.api.console.access import ConsoleState, console_state, current_viewer
from wellcar.server.api.console.oidc import (
    FLOW_COOKIE,
    FLOW_LIFETIME_S,
    Flow,
    OidcClient,
    OidcError,
)
from wellcar.server.api.console.page_errors import ConsoleRoute
from wellcar.server.api.console.session import (
    COOKIE,
    LIFETIME,
    ConsoleSession,
    encode_session,
    seal,
    unseal,
)
from wellcar.server.api.console.templates import render
from wellcar.server.auth import Role, Tokens
from wellcar.server.console_settings import ConsoleAuth
from wellcar.server.errors import NotFound

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

SUBJECTS = {Role.ADMIN: "admin token", Role.READER: "read-only token"}
CALLBACK_PATH = "/sign-in/oidc/callback"


def local_target(next_url: str) -> str:
    """Where to go after signing in: a path on this server only (no open redirect)."""
    if next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/"


def _signed_in(
    request: Request, state: ConsoleState, role: Role, subject: str, to: str
) -> Response:
    now: datetime = request.app.state.clock()
    session = ConsoleSession(role, subject, now + LIFETIME)
    response = RedirectResponse(local_target(to), status_code=303)
    response.set_cookie(
        COOKIE,
        encode_session(session, state.key),
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _sign_in_page(request: Request, next_url: str, error: str, status: int = 200) -> Response:
    context = {"next": local_target(next_url), "error": error, "auth": console_state(request).auth}
    return render(request, "sign_in.html", context, status)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "/") -> Response:
    if console_state(request).auth is ConsoleAuth.LAB or current_viewer(request) is not None:
        return RedirectResponse(local_target(next), status_code=303)
    return _sign_in_page(request, next, "")


@router.post("/sign-in")
def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    state = console_state(request)
    if state.auth is not ConsoleAuth.TOKEN:
        raise NotFound("this server does not sign people in with its tokens")
    tokens: Tokens = request.app.state.tokens
    role = tokens.role_of(token.strip())
    if role is None:
        return _sign_in_page(
            request, next, "token: not this server's admin or read-only token", 401
        )
    return _signed_in(request, state, role, SUBJECTS[role], next)


def _oidc(state: ConsoleState) -> OidcClient:
    if state.auth is not ConsoleAuth.OIDC or state.oidc is None:
        raise NotFound("this server does not sign people in with OpenID Connect")
    return state.oidc


def _redirect_uri(request: Request) -> str:
    # The callback at the address the browser used (set --proxy headers right behind one).
    return str(request.base_url).rstrip("/") + CALLBACK_PATH


@router.get("/sign-in/oidc")
def oidc_start(request: Request, next: str = "/") -> Response:
    state = console_state(request)
    client = _oidc(state)
    try:
        url, flow = client.start(_redirect_uri(request), local_target(next))
    except OidcError as exc:
        return _sign_in_page(request, next, str(exc), 502)
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a navigation from another site.
    response.set_cookie(
        FLOW_COOKIE,
        seal(flow.to_json(), state.key),
        max_age=FLOW_LIFETIME_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/sign-in/oidc",
    )
    return response


@router.get(CALLBACK_PATH)
def oidc_callback(
    request: Request,
    code: str = "",
    state: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    console = console_state(request)
    client = _oidc(console)
    sealed = unseal(request.cookies.get(FLOW_COOKIE), console.key)
    try:
        flow = Flow.from_json(sealed) if sealed else None
    except (ValueError, TypeError):
        flow = None
    if error:
        message = f"the identity provider said no: {error_description or error}"
        return _sign_in_page(request, flow.next if flow else "/", message[:300], 401)
    if flow is None:
        return _sign_in_page(request, "/", "this sign-in was not started here: start again", 400)
    try:
        who = client.finish(code, state, flow, _redirect_uri(request))
    except OidcError as exc:
        return _sign_in_page(request, flow.next, str(exc), 401)
    response = _signed_in(request, console, who.role, who.subject, flow.next)
    response.delete_cookie(FLOW_COOKIE, path="/sign-in/oidc")
    return response


@router.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE)
    return response
