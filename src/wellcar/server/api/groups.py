"""/api/apps/{app}/groups: groups and their rollout policies."""

from __future__ import annotations

from fastapi import Response

from wellcar.server.data import groups as data
from wellcar.server.data.applications import resolve_app

from . import endpoints as ep
from .common import (
    EngineDep,
    PageParam,
    PerPageParam,
    fields_of,
    make_router,
    paging,
    read_tx,
    write_tx,
)
from .deps import Admin, Now, Reader
from .endpoints import register
from .models import Group, GroupCreate, GroupsPage, GroupUpdate

router = make_router("groups")


def group_body(group: data.Group) -> Group:
    return Group.model_validate(group)


@register(router, ep.LIST_GROUPS)
def list_groups(
    _: Reader, engine: EngineDep, app_id: str, page: PageParam = 1, perpage: PerPageParam = 10
) -> GroupsPage:
    """The application's groups, newest first, each with its channel and package."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        found = data.list_groups(conn, resolve_app(conn, app_id), limit, offset)
    groups = [group_body(g) for g in found.groups]
    return GroupsPage(totalCount=found.total, count=len(groups), groups=groups)


@register(router, ep.CREATE_GROUP)
def create_group(_: Admin, engine: EngineDep, now: Now, app_id: str, body: GroupCreate) -> Group:
    """Create a group; its track defaults to its id, safe mode is on unless turned off."""
    with write_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        group_id = data.create_group(conn, resolved, fields_of(body, data.NewGroup), now)
        return group_body(data.get_group(conn, resolved, group_id))


@register(router, ep.GET_GROUP)
def get_group(_: Reader, engine: EngineDep, app_id: str, group_id: str) -> Group:
    with read_tx(engine) as conn:
        return group_body(data.get_group(conn, resolve_app(conn, app_id), group_id))


@register(router, ep.UPDATE_GROUP)
def update_group(
    _: Admin, engine: EngineDep, app_id: str, group_id: str, body: GroupUpdate
) -> Group:
    """Change a group; fields left out keep their value, and the result is validated whole."""
    with write_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        data.update_group(conn, resolved, group_id, fields_of(body, data.GroupChanges))
        return group_body(data.get_group(conn, resolved, group_id))


@register(router, ep.DELETE_GROUP)
def delete_group(_: Admin, engine: EngineDep, app_id: str, group_id: str) -> Response:
    with write_tx(engine) as conn:
        data.delete_group(conn, resolve_app(conn, app_id), group_id)
    return Response(status_code=204)
