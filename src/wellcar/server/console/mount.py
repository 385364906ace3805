"""Mounting the console on the server's application (called once by the app factory)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from wellcar.server.auth import Tokens
from wellcar.server.console import forms, pages, sign_in
from wellcar.server.console.access import ConsoleState
from wellcar.server.console.session import ConsoleAuth, session_key
from wellcar.server.settings import ServerSettings

STATIC_PATH = "/console-static"


def mount_console(app: FastAPI, settings: ServerSettings, tokens: Tokens) -> None:
    app.state.console = ConsoleState(ConsoleAuth(settings.console_auth), session_key(tokens))
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("wellcar.server.console", "static")]),
        name="console-static",
    )
    for module in (sign_in, pages, forms):
        app.include_router(module.router)
