"""/api/apps/{app}/packages: update payloads (versions) of an application."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from wellcar.server.data import packages as data
from wellcar.server.data.applications import resolve_app
from wellcar.server.data.floors import package_floor_channels as floor_channels_of

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
from .models import (
    FlatcarActionInput,
    FloorChannel,
    FloorChannels,
    Package,
    PackageCreate,
    PackageFileInput,
    PackagesPage,
    PackageUpdate,
)

router = make_router("packages")


def package_body(package: data.Package) -> Package:
    return Package.model_validate(package)


def _action_fields(action: FlatcarActionInput | None) -> data.FlatcarActionFields | None:
    return None if action is None else fields_of(action, data.FlatcarActionFields)


def _file_fields(files: list[PackageFileInput] | None) -> list[data.NewPackageFile] | None:
    return None if files is None else [fields_of(f, data.NewPackageFile) for f in files]


@register(router, ep.LIST_PACKAGES)
def list_packages(
    _: Reader,
    engine: EngineDep,
    app_id: str,
    page: PageParam = 1,
    perpage: PerPageParam = 10,
    search_version: Annotated[
        str | None, Query(alias="searchVersion", description="part of the version")
    ] = None,
) -> PackagesPage:
    """The application's packages, newest version first."""
    limit, offset = paging(page, perpage)
    with read_tx(engine) as conn:
        found = data.list_packages(conn, resolve_app(conn, app_id), limit, offset, search_version)
    packages = [package_body(p) for p in found.packages]
    return PackagesPage(totalCount=found.total, count=len(packages), packages=packages)


@register(router, ep.CREATE_PACKAGE)
def create_package(
    _: Admin, engine: EngineDep, now: Now, app_id: str, body: PackageCreate
) -> Package:
    """Register a package; nothing is downloaded or hashed: send size, hash and sha256."""
    with write_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        fields = fields_of(
            body,
            data.NewPackage,
            flatcar_action=_action_fields(body.flatcar_action),
            extra_files=_file_fields(body.extra_files),
        )
        package_id = data.create_package(conn, resolved, fields, now)
        return package_body(data.get_package(conn, resolved, package_id))


@register(router, ep.GET_PACKAGE)
def get_package(_: Reader, engine: EngineDep, app_id: str, package_id: str) -> Package:
    with read_tx(engine) as conn:
        return package_body(data.get_package(conn, resolve_app(conn, app_id), package_id))


@register(router, ep.UPDATE_PACKAGE)
def update_package(
    _: Admin, engine: EngineDep, now: Now, app_id: str, package_id: str, body: PackageUpdate
) -> Package:
    """Change a package; fields left out keep their value, the arch cannot change."""
    with write_tx(engine) as conn:
        resolved = resolve_app(conn, app_id)
        changes = fields_of(
            body,
            data.PackageChanges,
            flatcar_action=_action_fields(body.flatcar_action),
            extra_files=_file_fields(body.extra_files),
        )
        data.update_package(conn, resolved, package_id, changes, now)
        return package_body(data.get_package(conn, resolved, package_id))


@register(router, ep.DELETE_PACKAGE)
def delete_package(_: Admin, engine: EngineDep, app_id: str, package_id: str) -> Response:
    """Delete a package that no channel serves and that is no channel's floor."""
    with write_tx(engine) as conn:
        data.delete_package(conn, resolve_app(conn, app_id), package_id)
    return Response(status_code=204)


@register(router, ep.PACKAGE_FLOOR_CHANNELS)
def package_floor_channels(
    _: Reader, engine: EngineDep, app_id: str, package_id: str
) -> FloorChannels:
    """The channels on which this package is a floor."""
    with read_tx(engine) as conn:
        found = floor_channels_of(conn, resolve_app(conn, app_id), package_id)
    items = [
        FloorChannel(channel=channel_body(f.channel), floor_reason=f.floor_reason) for f in found
    ]
    return FloorChannels(channels=items, count=len(items))
