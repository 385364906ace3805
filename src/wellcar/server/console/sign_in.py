"""Signing in to the console with the server's admin or read-only token, and signing out.

The token is sent once, in a form; the browser then holds a signed session cookie
(HttpOnly, SameSite=Strict), never the token itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from wellcar.server.auth import Role, Tokens
from wellcar.server.console.access import console_state, current_viewer
from wellcar.server.console.page_errors import ConsoleRoute
from wellcar.server.console.session import (
    COOKIE,
    LIFETIME,
    ConsoleAuth,
    ConsoleSession,
    encode_session,
)
from wellcar.server.console.templates import render

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

SUBJECTS = {Role.ADMIN: "admin token", Role.READER: "read-only token"}


def local_target(next_url: str) -> str:
    """Where to go after signing in: a path on this server only (no open redirect)."""
    if next_url.startswith("/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/"


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "/") -> Response:
    if console_state(request).auth is ConsoleAuth.LAB or current_viewer(request) is not None:
        return RedirectResponse(local_target(next), status_code=303)
    return render(request, "sign_in.html", {"next": local_target(next), "error": ""})


@router.post("/sign-in")
def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    state = console_state(request)
    tokens: Tokens = request.app.state.tokens
    role = tokens.role_of(token.strip())
    if role is None:
        context = {
            "next": local_target(next),
            "error": "token: not this server's admin or read-only token",
        }
        return render(request, "sign_in.html", context, 401)
    session = ConsoleSession(role, SUBJECTS[role], request.app.state.clock() + LIFETIME)
    response = RedirectResponse(local_target(next), status_code=303)
    response.set_cookie(
        COOKIE,
        encode_session(session, state.key),
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE)
    return response
