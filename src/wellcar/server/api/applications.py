"""/api/apps: applications (an id may be given with or without braces, or a product id)."""

from __future__ import annotations

from fastapi import Response

from wellcar.server import fleet_queries as fq

from .common import EngineDep, PageParam, PerPageParam, make_router, paging, read_tx, write_tx
from .deps import Admin, Now, Reader
from .errors import ERROR_RESPONSES, WRITE_ERROR_RESPONSES
from .models import AppCreate, Application, AppsPage, AppUpdate

router = make_router("applications")


@router.get("/apps", response_model=AppsPage, responses=ERROR_RESPONSES)
def list_apps(
    _: Reader, engine: EngineDep, now: Now, page: PageParam = 1, perpage: PerPageParam = 10
) -> AppsPage:
    """Applications, newest first, each with its groups, channels and active instances."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        return fq.list_apps(conn, limit, offset, now)


@router.post("/apps", response_model=Application, responses=WRITE_ERROR_RESPONSES)
def create_app(_: Admin, engine: EngineDep, now: Now, body: AppCreate) -> Application:
    """Create an application, optionally with a given id (stored lower-case, no braces)."""
    with write_tx(engine) as conn:
        app_id = fq.create_app(conn, body, now)
        return fq.get_app(conn, app_id, now)


@router.get("/apps/{app_id}", response_model=Application, responses=ERROR_RESPONSES)
def get_app(_: Reader, engine: EngineDep, now: Now, app_id: str) -> Application:
    with read_tx(engine) as conn:
        return fq.get_app(conn, fq.resolve_app(conn, app_id), now)


@router.put("/apps/{app_id}", response_model=Application, responses=WRITE_ERROR_RESPONSES)
def update_app(_: Admin, engine: EngineDep, now: Now, app_id: str, body: AppUpdate) -> Application:
    """Change name, description or product id; fields left out keep their value."""
    with write_tx(engine) as conn:
        resolved = fq.resolve_app(conn, app_id)
        fq.update_app(conn, resolved, body)
        return fq.get_app(conn, resolved, now)


@router.delete("/apps/{app_id}", status_code=204, responses=WRITE_ERROR_RESPONSES)
def delete_app(_: Admin, engine: EngineDep, app_id: str) -> Response:
    """Delete the application with its groups, channels, packages and instance records."""
    with write_tx(engine) as conn:
        fq.delete_app(conn, fq.resolve_app(conn, app_id))
    return Response(status_code=204)
