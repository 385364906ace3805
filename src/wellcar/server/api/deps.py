"""What every REST handler needs: the database, the clock, the caller's role.

Transactions are opened by the handlers (`common.read_tx` / `common.write_tx`), so a
write commits before its response is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from wellcar.server.auth import Role, Tokens

_bearer = HTTPBearer(
    auto_error=False, description="admin token for writes, read-only token for reads"
)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


def _role(request: Request, cred: HTTPAuthorizationCredentials | None) -> Role:
    tokens: Tokens = request.app.state.tokens
    role = tokens.role_of(cred.credentials if cred else None)
    if role is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return role


def require_reader(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Role:
    return _role(request, cred)


def require_admin(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Role:
    role = _role(request, cred)
    if role is not Role.ADMIN:
        raise HTTPException(
            status_code=403, detail="this token is read-only: writes need the admin token"
        )
    return role


Reader = Annotated[Role, Depends(require_reader)]
Admin = Annotated[Role, Depends(require_admin)]
Now = Annotated[datetime, Depends(get_now)]
