"""Instances (machines) of a group, their status history, and their alias."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from wellcar.server.data import instances as data
from wellcar.server.data.applications import resolve_app
from wellcar.server.data.groups import group_row

from . import endpoints as ep
from .common import EngineDep, PageParam, PerPageParam, make_router, paging, read_tx, write_tx
from .deps import Admin, Now, Reader
from .endpoints import register
from .models import Instance, InstanceCount, InstancesPage, InstanceUpdate, StatusHistoryEntry

router = make_router("instances")

Duration = Annotated[str, Query(description="only instances seen within: 1h, 1d, 7d or 30d")]


@register(router, ep.LIST_INSTANCES)
def list_instances(
    _: Reader,
    engine: EngineDep,
    now: Now,
    app_id: str,
    group_id: str,
    status: Annotated[int, Query(ge=0, le=8, description="0 any, 1-8 one status")] = 0,
    page: PageParam = 1,
    perpage: PerPageParam = 10,
    sort_filter: Annotated[
        str | None,
        Query(alias="sortFilter", description="0/alias (default), 1/ip, 2/last_check_for_updates"),
    ] = None,
    sort: Annotated[str | None, Query(description="same as sortFilter")] = None,
    sort_order: Annotated[
        str | None, Query(alias="sortOrder", description="0/asc or 1/desc (default)")
    ] = None,
    search_filter: Annotated[
        str | None, Query(alias="searchFilter", description="All (default), alias, id or ip")
    ] = None,
    search_value: Annotated[
        str | None, Query(alias="searchValue", description="text the field contains")
    ] = None,
    search: Annotated[
        str | None, Query(description="machine id, alias or IP containing this text")
    ] = None,
    version: Annotated[str | None, Query(description="only instances on this version")] = None,
    duration: Duration = "30d",
) -> InstancesPage:
    """A page of the group's instances with the number matching, as Nebraska."""
    limit, offset = paging(page, perpage)
    order = (sort_order or "1").strip().lower()
    with read_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        group = group_row(conn, resolved, group_id)
        query = data.InstanceQuery(
            app_id=resolved,
            group_id=group.id,
            now=now,
            duration=duration,
            status=status,
            version=version or "",
            search_field=search_filter or "All",
            search_value=search_value or search or "",
            sort=sort_filter or sort or "0",
            descending=order not in ("0", "asc"),
            limit=limit,
            offset=offset,
        )
        found = data.list_instances(conn, query)
    instances = [Instance.model_validate(i) for i in found.instances]
    return InstancesPage(total=found.total, instances=instances)


@register(router, ep.COUNT_INSTANCES)
def count_instances(
    _: Reader, engine: EngineDep, now: Now, app_id: str, group_id: str, duration: Duration = "30d"
) -> InstanceCount:
    with read_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        group = group_row(conn, resolved, group_id)
        query = data.InstanceQuery(app_id=resolved, group_id=group.id, now=now, duration=duration)
        return InstanceCount(count=data.count_instances(conn, query))


@register(router, ep.GET_GROUP_INSTANCE)
def get_group_instance(
    _: Reader, engine: EngineDep, app_id: str, group_id: str, instance_id: str
) -> Instance:
    with read_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        group_row(conn, resolved, group_id)
        return Instance.model_validate(data.get_instance(conn, resolved, instance_id))


@register(router, ep.GET_INSTANCE)
def get_instance(_: Reader, engine: EngineDep, app_id: str, instance_id: str) -> Instance:
    """An instance and its state for this application, whatever its group."""
    with read_tx(engine) as conn:
        return Instance.model_validate(
            data.get_instance(conn, resolve_app(conn, app_id), instance_id)
        )


@register(router, ep.STATUS_HISTORY)
def status_history(
    _: Reader,
    engine: EngineDep,
    app_id: str,
    group_id: str,
    instance_id: str,
    limit: Annotated[int, Query(ge=0, le=1000, description="entries (0 means 20)")] = 20,
) -> list[StatusHistoryEntry]:
    """The instance's status changes in this group, newest first."""
    with read_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        group = group_row(conn, resolved, group_id)
        history = data.status_history(conn, resolved, group.id, instance_id, limit or 20)
    return [StatusHistoryEntry.model_validate(entry) for entry in history]


@register(router, ep.UPDATE_INSTANCE)
def update_instance(
    _: Admin, engine: EngineDep, instance_id: str, body: InstanceUpdate
) -> Instance:
    """Set the instance's alias (shown instead of its machine id)."""
    with write_tx(engine) as conn:
        return Instance.model_validate(data.update_instance_alias(conn, instance_id, body.alias))
