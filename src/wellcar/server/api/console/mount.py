"""Mounting the console on the server's application (called once by the app factory)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from wellcar.server.api.console import forms, pages, sign_in
from wellcar.server.api.console.access import ConsoleState
from wellcar.server.api.console.oidc import OidcClient
from wellcar.server.api.console.session import session_key
from wellcar.server.auth import Tokens
from wellcar.server.console_settings import ConsoleAuth
from wellcar.server.settings import ServerSettings

STATIC_PATH = "/console-static"


def mount_console(app: FastAPI, settings: ServerSettings, tokens: Tokens) -> None:
    console = settings.console
    console.check()
    oidc = OidcClient(console.oidc) if console.auth is ConsoleAuth.OIDC and console.oidc else None
    app.state.console = ConsoleState(console.auth, session_key(tokens), oidc)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("wellcar.server.api.console", "static")]),
        name="console-static",
    )
    for module in (sign_in, pages, forms):
        app.include_router(module.router)
