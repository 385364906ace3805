"""/api/apps: applications (an id may be given with or without braces, or a product id)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from wellcar.server.data import applications as data

from . import endpoints as ep
from .channels import channel_body
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
from .groups import group_body
from .models import AppCreate, Application, AppsPage, AppUpdate, InstanceCount

router = make_router("applications")


def application_body(app: data.Application) -> Application:
    return Application(
        id=app.id,
        product_id=app.product_id,
        name=app.name,
        description=app.description,
        created_ts=app.created_ts,
        groups=[group_body(g) for g in app.groups],
        channels=[channel_body(c) for c in app.channels],
        instances=InstanceCount(count=app.instance_count),
    )


@register(router, ep.LIST_APPS)
def list_apps(
    _: Reader, engine: EngineDep, now: Now, page: PageParam = 1, perpage: PerPageParam = 10
) -> AppsPage:
    """Applications, newest first, each with its groups, channels and active instances."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        found = data.list_apps(conn, limit, offset, now)
    apps = [application_body(a) for a in found.applications]
    return AppsPage(totalCount=found.total, count=len(apps), applications=apps)


@register(router, ep.CREATE_APP)
def create_app(
    _: Admin,
    engine: EngineDep,
    now: Now,
    body: AppCreate,
    clone_from: Annotated[
        str | None,
        Query(description="copy this application's channels (without packages) and groups"),
    ] = None,
) -> Application:
    """Create an application, optionally with a given id (stored lower-case, no braces)."""
    with write_tx(engine) as conn:
        app_id = data.create_app(conn, fields_of(body, data.NewApplication), now)
        if clone_from and clone_from.strip():  # empty: no cloning, as Nebraska
            data.clone_channels_and_groups(conn, clone_from.strip(), app_id, now)
        return application_body(data.get_app(conn, app_id, now))


@register(router, ep.GET_APP)
def get_app(_: Reader, engine: EngineDep, now: Now, app_id: str) -> Application:
    with read_tx(engine) as conn:
        return application_body(data.get_app(conn, data.resolve_app(conn, app_id), now))


@register(router, ep.UPDATE_APP)
def update_app(_: Admin, engine: EngineDep, now: Now, app_id: str, body: AppUpdate) -> Application:
    """Change name, description or product id; fields left out keep their value."""
    with write_tx(engine) as conn:
        resolved = data.resolve_app(conn, app_id)
        data.update_app(conn, resolved, fields_of(body, data.ApplicationChanges))
        return application_body(data.get_app(conn, resolved, now))


@register(router, ep.DELETE_APP)
def delete_app(_: Admin, engine: EngineDep, app_id: str) -> Response:
    """Delete the application with its groups, channels, packages and instance records."""
    with write_tx(engine) as conn:
        data.delete_app(conn, data.resolve_app(conn, app_id))
    return Response(status_code=204)
