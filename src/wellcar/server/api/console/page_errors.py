"""Console routes answer with pages: errors become an error page, a missing sign-in a redirect."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from wellcar.server.api.console.access import SignInRequired, WriteRefused
from wellcar.server.api.console.templates import render
from wellcar.server.api.errors import describe_validation
from wellcar.server.errors import InvalidInput, NotFound


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"title": title, "message": message}, status)


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method == "GET":
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
                return error_page(request, 401, "Sign in first", "Your session has ended.")
            except WriteRefused as exc:
                return error_page(request, 403, "Not allowed", str(exc))
            except NotFound as exc:
                return error_page(request, 404, "Not found", str(exc))
            except InvalidInput as exc:
                return error_page(request, 400, "Bad request", str(exc))
            except RequestValidationError as exc:
                return error_page(request, 400, "Bad request", describe_validation(exc.errors()))

        return handle
