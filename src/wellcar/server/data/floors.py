"""Channel floors: packages every client of a channel must pass through, with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from wellcar.server.data.channels import Channel, channel_row, channels_by_id
from wellcar.server.data.packages import (
    FlatcarAction,
    PackageFile,
    arch_compatible,
    package_field_sets,
    package_row,
)
from wellcar.server.db import schema as t
from wellcar.server.errors import InvalidInput, NotFound
from wellcar.server.semver import sort_key


@dataclass(frozen=True, slots=True)
class FloorPackage:
    """A package as a floor of one channel (Package's fields and the floor's)."""

    id: str
    type: int
    version: str
    url: str
    filename: str | None
    description: str | None
    size: int | None
    hash: str | None
    created_ts: datetime
    channels_blacklist: list[str]
    application_id: str
    flatcar_action: FlatcarAction | None
    arch: int
    floor_reason: str | None
    is_floor: bool = True
    extra_files: list[PackageFile] | None = None


@dataclass(frozen=True, slots=True)
class FloorsPage:
    packages: list[FloorPackage]
    current_page: int
    last_page: int
    total_count: int


@dataclass(frozen=True, slots=True)
class ChannelFloor:
    channel_id: str
    package_id: str
    floor_reason: str | None
    created_ts: datetime


@dataclass(frozen=True, slots=True)
class FloorChannel:
    channel: Channel
    floor_reason: str | None


def list_floors(conn: Connection, channel_id: str, limit: int, offset: int) -> FloorsPage:
    """A channel's floor packages, oldest version first."""
    f = t.channel_package_floors
    rows = list(
        conn.execute(
            select(t.package, f.c.floor_reason)
            .select_from(f.join(t.package, f.c.package_id == t.package.c.id))
            .where(f.c.channel_id == channel_id)
        ).all()
    )
    rows.sort(key=lambda r: (sort_key(r.version), r.id))
    page_rows = rows[offset : offset + limit]
    floors = [
        FloorPackage(**fields, floor_reason=r.floor_reason)
        for fields, r in zip(package_field_sets(conn, page_rows), page_rows, strict=True)
    ]
    total = len(rows)
    return FloorsPage(
        packages=floors,
        current_page=offset // limit + 1,
        last_page=max(1, -(-total // limit)),
        total_count=total,
    )


def add_floor(
    conn: Connection, channel_id: str, package_id: str, reason: str | None, now: datetime
) -> ChannelFloor:
    channel = channel_row(conn, None, channel_id)._mapping
    pkg = conn.execute(select(t.package).where(t.package.c.id == package_id.strip())).first()
    if pkg is None:
        raise NotFound(f"no package {package_id!r}")
    p = pkg._mapping
    if p["application_id"] != channel["application_id"]:
        raise InvalidInput("package and channel belong to different applications")
    if not arch_compatible(channel["arch"], p["arch"]):
        raise InvalidInput(
            f"package {p['version']} is for arch {p['arch']}, "
            f"the channel for arch {channel['arch']}"
        )
    bl = t.package_channel_blacklist
    if conn.execute(
        select(bl.c.package_id).where(bl.c.package_id == p["id"], bl.c.channel_id == channel["id"])
    ).first():
        raise InvalidInput(f"package {p['version']} blacklists this channel: it cannot be a floor")
    f = t.channel_package_floors
    key = (f.c.channel_id == channel["id"], f.c.package_id == p["id"])
    existing = conn.execute(select(f.c.created_ts).where(*key)).first()
    if existing is None:
        conn.execute(
            insert(f).values(
                channel_id=channel["id"], package_id=p["id"], floor_reason=reason, created_ts=now
            )
        )
        created = now
    else:
        conn.execute(update(f).where(*key).values(floor_reason=reason))
        created = existing.created_ts
    return ChannelFloor(
        channel_id=channel["id"], package_id=p["id"], floor_reason=reason, created_ts=created
    )


def remove_floor(conn: Connection, channel_id: str, package_id: str) -> None:
    f = t.channel_package_floors
    result = conn.execute(
        delete(f).where(f.c.channel_id == channel_id.strip(), f.c.package_id == package_id.strip())
    )
    if result.rowcount == 0:
        raise NotFound(f"package {package_id!r} is not a floor of channel {channel_id!r}")


def package_floor_channels(conn: Connection, app_id: str, package_id: str) -> list[FloorChannel]:
    """The channels on which the package is a floor, by channel name."""
    row = package_row(conn, app_id, package_id)
    f = t.channel_package_floors
    floors = conn.execute(
        select(f.c.channel_id, f.c.floor_reason).where(f.c.package_id == row.id)
    ).all()
    channels = channels_by_id(conn, [fl.channel_id for fl in floors])
    items = [
        FloorChannel(channel=channels[fl.channel_id], floor_reason=fl.floor_reason)
        for fl in floors
        if fl.channel_id in channels
    ]
    items.sort(key=lambda i: i.channel.name)
    return items
