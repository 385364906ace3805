"""Every /api error as `{"error": "..."}` with the right status, never a 500 for bad input.

`ApiRoute` wraps each handler: invalid bodies and query parameters become 400 naming
the field (instead of FastAPI's 422), missing resources 404, uniqueness conflicts 409,
token problems 401/403. Handlers manage their own transactions (see `db.py`), so a
failed write is rolled back before its error is rendered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from wellcar.logline import log_fields
from wellcar.server.errors import Conflict, DatabaseError, InvalidInput, NotFound, ServerError

from .models import ErrorBody

log = logging.getLogger("wellcar.server.api")

# Invalid input is answered with 400, never FastAPI's 422: "4XX" documents that (and keeps
# FastAPI from advertising a 422 validation body that is never sent).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input (the message names the field)"},
    401: {"model": ErrorBody, "description": "Missing or unknown bearer token"},
    404: {"model": ErrorBody, "description": "No such resource"},
    "4XX": {"model": ErrorBody, "description": "Any other client error"},
}
WRITE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorBody, "description": "The token is read-only"},
    409: {"model": ErrorBody, "description": "Conflicts with an existing resource"},
}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def _loc(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
        return ".".join(parts) if parts else "request body"
    if parts and parts[0] in ("query", "path", "header"):
        return f"{parts[0]} parameter {'.'.join(parts[1:])}"
    return ".".join(parts)


def describe_validation(errors: Sequence[Any]) -> str:
    messages = []
    for err in errors[:5]:
        where = _loc(err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            messages.append("request body is not valid JSON")
            continue
        messages.append(f"{where}: {msg}" if where else msg)
    return "; ".join(messages) or "invalid request"


class ApiRoute(APIRoute):
    """An APIRoute whose errors are `{"error": ...}` bodies with meaningful statuses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return error_response(400, describe_validation(exc.errors()))
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), exc.headers)
            except NotFound as exc:
                return error_response(404, str(exc))
            except Conflict as exc:
                return error_response(409, str(exc))
            except InvalidInput as exc:
                return error_response(400, str(exc))
            except IntegrityError as exc:
                log.info("write refused by a database constraint", extra=log_fields(error=exc.orig))
                return error_response(409, "conflicts with an existing record")
            except (DataError, OverflowError) as exc:
                # Whatever validation missed that the database cannot store.
                log.info("value refused by the database", extra=log_fields(error=exc))
                return error_response(400, "a value is out of range or cannot be stored")
            except (DatabaseError, OperationalError) as exc:
                log.error(
                    "database unavailable",
                    extra=log_fields(method=request.method, path=request.url.path, error=exc),
                )
                return error_response(503, "database unavailable, try again")
            except ServerError as exc:
                return error_response(400, str(exc))
            except Exception:
                # A bug, not the caller's fault: log it whole, answer without internals.
                log.exception(
                    "internal error", extra=log_fields(method=request.method, path=request.url.path)
                )
                return error_response(500, "internal server error (logged)")

        return handle
