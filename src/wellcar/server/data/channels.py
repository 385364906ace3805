"""Channels of an application: which package each serves, for which arch."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from wellcar.server.activity_log import add_activity
from wellcar.server.data.batches import in_batches
from wellcar.server.data.packages import Package, arch_compatible, packages_by_id
from wellcar.server.data.text_input import blank_to_none
from wellcar.server.db import schema as t
from wellcar.server.errors import Conflict, InvalidInput, NotFound
from wellcar.server.fleet_codes import ActivityClass, Severity


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    color: str
    created_ts: datetime
    application_id: str
    package_id: str | None
    package: Package | None
    arch: int


@dataclass(frozen=True, slots=True)
class ChannelsPage:
    total: int
    channels: list[Channel]


@dataclass(frozen=True, slots=True)
class NewChannel:
    name: str
    color: str
    arch: int
    package_id: str | None


@dataclass(frozen=True, slots=True)
class ChannelChanges:
    """None keeps a value; `sent` tells a package_id given as null (cleared) from one left out."""

    name: str | None
    color: str | None
    package_id: str | None
    arch: int | None
    sent: frozenset[str]


def channel_rows(conn: Connection, app_id: str) -> list[Row[Any]]:
    c = t.channel
    return list(
        conn.execute(
            select(c).where(c.c.application_id == app_id).order_by(c.c.name, c.c.arch, c.c.id)
        ).all()
    )


def channels_from_rows(conn: Connection, rows: Sequence[Row[Any]]) -> list[Channel]:
    packages = packages_by_id(
        conn, [r._mapping["package_id"] for r in rows if r._mapping["package_id"]]
    )
    out = []
    for row in rows:
        r = row._mapping
        out.append(
            Channel(
                id=r["id"],
                name=r["name"],
                color=r["color"] or "",
                created_ts=r["created_ts"],
                application_id=r["application_id"],
                package_id=r["package_id"],
                package=packages.get(r["package_id"]) if r["package_id"] else None,
                arch=r["arch"],
            )
        )
    return out


def channels_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, Channel]:
    wanted = sorted(set(ids))
    rows: list[Row[Any]] = []
    for batch in in_batches(wanted):
        rows.extend(conn.execute(select(t.channel).where(t.channel.c.id.in_(batch))).all())
    return {c.id: c for c in channels_from_rows(conn, rows)}


def channel_row(conn: Connection, app_id: str | None, channel_id: str) -> Row[Any]:
    c = t.channel
    query = select(c).where(c.c.id == channel_id.strip())
    if app_id is not None:
        query = query.where(c.c.application_id == app_id)
    row = conn.execute(query).first()
    if row is None:
        where = f" in application {app_id}" if app_id else ""
        raise NotFound(f"no channel {channel_id!r}{where}")
    return row


def get_channel(conn: Connection, app_id: str | None, channel_id: str) -> Channel:
    return channels_from_rows(conn, [channel_row(conn, app_id, channel_id)])[0]


def list_channels(conn: Connection, app_id: str, limit: int, offset: int) -> ChannelsPage:
    rows = channel_rows(conn, app_id)
    page = channels_from_rows(conn, rows[offset : offset + limit])
    return ChannelsPage(total=len(rows), channels=page)


def _check_channel_package(
    conn: Connection, app_id: str, channel_id: str | None, arch: int, package_id: str
) -> Row[Any]:
    p = t.package
    row = conn.execute(
        select(p).where(p.c.id == package_id.strip(), p.c.application_id == app_id)
    ).first()
    if row is None:
        raise InvalidInput(f"package_id: no package {package_id!r} in this application")
    pkg = row._mapping
    if not arch_compatible(arch, pkg["arch"]):
        raise InvalidInput(
            f"package_id: package {pkg['version']} is for arch {pkg['arch']}, the channel for "
            f"arch {arch}"
        )
    if channel_id is not None:
        bl = t.package_channel_blacklist
        blocked = conn.execute(
            select(bl.c.package_id).where(
                bl.c.package_id == pkg["id"], bl.c.channel_id == channel_id
            )
        ).first()
        if blocked is not None:
            raise InvalidInput(
                f"package_id: package {pkg['version']} blacklists this channel; "
                "remove it from the package's channels_blacklist first"
            )
    return row


def _check_channel_name_free(
    conn: Connection, app_id: str, name: str, arch: int, channel_id: str | None
) -> None:
    c = t.channel
    query = select(c.c.id).where(c.c.application_id == app_id, c.c.name == name, c.c.arch == arch)
    if channel_id is not None:
        query = query.where(c.c.id != channel_id)
    if conn.execute(query).first() is not None:
        raise Conflict(f"name: this application already has a channel {name!r} for arch {arch}")


def create_channel(conn: Connection, app_id: str, body: NewChannel, now: datetime) -> str:
    name = body.name.strip()
    _check_channel_name_free(conn, app_id, name, body.arch, None)
    package_id = blank_to_none(body.package_id)
    if package_id is not None:
        package_id = _check_channel_package(conn, app_id, None, body.arch, package_id).id
    channel_id = str(uuid.uuid4())
    conn.execute(
        insert(t.channel).values(
            id=channel_id,
            name=name,
            color=body.color,
            application_id=app_id,
            package_id=package_id,
            arch=body.arch,
            created_ts=now,
        )
    )
    return channel_id


def update_channel(
    conn: Connection, app_id: str, channel_id: str, body: ChannelChanges, now: datetime
) -> None:
    """Apply the change; a new package is logged as ChannelPackageUpdated (as Nebraska)."""
    row = channel_row(conn, app_id, channel_id)._mapping
    if body.arch is not None and body.arch != row["arch"]:
        raise InvalidInput("arch: a channel's arch cannot change; create a new channel")
    values: dict[str, Any] = {}
    if body.name is not None:
        name = body.name.strip()
        if name != row["name"]:
            _check_channel_name_free(conn, app_id, name, row["arch"], row["id"])
        values["name"] = name
    if body.color is not None:
        values["color"] = body.color
    new_version: str | None = None
    if "package_id" in body.sent:
        package_id = blank_to_none(body.package_id)
        if package_id is not None:
            pkg = _check_channel_package(conn, app_id, row["id"], row["arch"], package_id)
            package_id = pkg.id
            if package_id != row["package_id"]:
                new_version = pkg.version
        values["package_id"] = package_id
    if values:
        conn.execute(update(t.channel).where(t.channel.c.id == row["id"]).values(values))
    if new_version is not None:
        add_activity(
            conn,
            ActivityClass.CHANNEL_PACKAGE_UPDATED,
            Severity.INFO,
            new_version,
            app_id,
            now,
            channel_id=row["id"],
        )


def delete_channel(conn: Connection, app_id: str, channel_id: str) -> None:
    row = channel_row(conn, app_id, channel_id)
    conn.execute(delete(t.channel).where(t.channel.c.id == row.id))
