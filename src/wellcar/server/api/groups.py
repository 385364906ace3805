"""/api/apps/{app}/groups: groups and their rollout policies."""

from __future__ import annotations

from fastapi import Response

from wellcar.server import fleet_queries as fq

from .common import EngineDep, PageParam, PerPageParam, make_router, paging, read_tx, write_tx
from .deps import Admin, Now, Reader
from .errors import ERROR_RESPONSES, WRITE_ERROR_RESPONSES
from .models import Group, GroupCreate, GroupsPage, GroupUpdate

router = make_router("groups")


@router.get("/apps/{app_id}/groups", response_model=GroupsPage, responses=ERROR_RESPONSES)
def list_groups(
    _: Reader, engine: EngineDep, app_id: str, page: PageParam = 1, perpage: PerPageParam = 10
) -> GroupsPage:
    """The application's groups, newest first, each with its channel and package."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        return fq.list_groups(conn, fq.resolve_app(conn, app_id), limit, offset)


@router.post("/apps/{app_id}/groups", response_model=Group, responses=WRITE_ERROR_RESPONSES)
def create_group(_: Admin, engine: EngineDep, now: Now, app_id: str, body: GroupCreate) -> Group:
    """Create a group; its track defaults to its id, safe mode is on unless turned off."""
    with write_tx(engine) as conn:
        resolved = fq.resolve_app(conn, app_id)
        group_id = fq.create_group(conn, resolved, body, now)
        return fq.get_group(conn, resolved, group_id)


@router.get("/apps/{app_id}/groups/{group_id}", response_model=Group, responses=ERROR_RESPONSES)
def get_group(_: Reader, engine: EngineDep, app_id: str, group_id: str) -> Group:
    with read_tx(engine) as conn:
        return fq.get_group(conn, fq.resolve_app(conn, app_id), group_id)


@router.put(
    "/apps/{app_id}/groups/{group_id}", response_model=Group, responses=WRITE_ERROR_RESPONSES
)
def update_group(
    _: Admin, engine: EngineDep, app_id: str, group_id: str, body: GroupUpdate
) -> Group:
    """Change a group; fields left out keep their value, and the result is validated whole."""
    with write_tx(engine) as conn:
        resolved = fq.resolve_app(conn, app_id)
        fq.update_group(conn, resolved, group_id, body)
        return fq.get_group(conn, resolved, group_id)


@router.delete("/apps/{app_id}/groups/{group_id}", status_code=204, responses=WRITE_ERROR_RESPONSES)
def delete_group(_: Admin, engine: EngineDep, app_id: str, group_id: str) -> Response:
    with write_tx(engine) as conn:
        fq.delete_group(conn, fq.resolve_app(conn, app_id), group_id)
    return Response(status_code=204)
