"""Data access behind the REST API: applications, packages, channels, floors, groups.

Every function takes a Connection (the caller owns the transaction) and returns the
API's pydantic models. Rules are Nebraska's (`backend/pkg/api/*.go`); where Nebraska
would answer 500 for a user mistake, these raise InvalidInput/NotFound/Conflict with a
message that names the field.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from wellcar.server.activity_log import add_activity
from wellcar.server.api import models as m
from wellcar.server.catalog import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.errors import Conflict, InvalidInput, NotFound
from wellcar.server.fleet_codes import ActivityClass, Arch, PackageType, Severity
from wellcar.server.intervals import parse_interval
from wellcar.server.office_hours import is_valid_timezone, parse_office_hours
from wellcar.server.policy import ACTIVITY_WINDOW
from wellcar.server.semver import Version, parse_version

# Nebraska's "fake" instances (ids like "{uuid}", left by old test tooling) never count.
FAKE_INSTANCE_PATTERN = "{________-____-____-____-____________}"
_CHUNK = 500


def not_fake(column: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), column.not_like(FAKE_INSTANCE_PATTERN))


def version_key(version: str) -> Version:
    return parse_version(version) or Version(0, 0, 0)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def arch_compatible(channel_arch: int, package_arch: int) -> bool:
    """A channel may serve a package of its own arch, or one built for all arches."""
    return package_arch in (channel_arch, int(Arch.ALL))


def _blank_to_none(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


# -------------------------------------------------------------------------- applications


def resolve_app(conn: Connection, ref: str) -> str:
    """The application id for a UUID (braces and case ignored) or a product id."""
    text = ref.strip()
    app_id = canonical_uuid(text) if text else None
    a = t.application
    found = None
    if app_id is not None:
        found = conn.execute(select(a.c.id).where(a.c.id == app_id)).scalar()
    if found is None and text:
        found = conn.execute(
            select(a.c.id).where(func.lower(a.c.product_id) == text.lower())
        ).scalar()
    if found is None:
        raise NotFound(f"no application {ref!r}: give its id or product id")
    return str(found)


def _instance_count(conn: Connection, app_id: str, now: datetime) -> int:
    ia = t.instance_application
    count = conn.execute(
        select(func.count()).where(
            ia.c.application_id == app_id,
            ia.c.last_check_for_updates > now - ACTIVITY_WINDOW,
            not_fake(ia.c.instance_id),
        )
    ).scalar_one()
    return int(count)


def _app_model(conn: Connection, row: Row[Any], now: datetime) -> m.Application:
    r = row._mapping
    return m.Application(
        id=r["id"],
        product_id=r["product_id"],
        name=r["name"],
        description=r["description"] or "",
        created_ts=r["created_ts"],
        groups=_group_models(conn, _group_rows(conn, r["id"])),
        channels=_channel_models(conn, _channel_rows(conn, r["id"])),
        instances=m.InstanceCount(count=_instance_count(conn, r["id"], now)),
    )


def list_apps(conn: Connection, limit: int, offset: int, now: datetime) -> m.AppsPage:
    a = t.application
    total = int(conn.execute(select(func.count()).select_from(a)).scalar_one())
    rows = conn.execute(
        select(a).order_by(a.c.created_ts.desc(), a.c.id).limit(limit).offset(offset)
    ).all()
    apps = [_app_model(conn, row, now) for row in rows]
    return m.AppsPage(totalCount=total, count=len(apps), applications=apps)


def get_app(conn: Connection, app_id: str, now: datetime) -> m.Application:
    row = conn.execute(select(t.application).where(t.application.c.id == app_id)).first()
    if row is None:
        raise NotFound(f"no application {app_id!r}")
    return _app_model(conn, row, now)


def _check_product_id(conn: Connection, product_id: str | None, app_id: str | None) -> None:
    if product_id is None:
        return
    if canonical_uuid(product_id) is not None:
        raise InvalidInput(
            f"product_id: {product_id!r} looks like a UUID; use a name like 'io.wellcar.os'"
        )
    a = t.application
    query = select(a.c.id).where(func.lower(a.c.product_id) == product_id.lower())
    if app_id is not None:
        query = query.where(a.c.id != app_id)
    if conn.execute(query).first() is not None:
        raise Conflict(f"product_id: another application already uses {product_id!r}")


def create_app(conn: Connection, body: m.AppCreate, now: datetime) -> str:
    if body.id is not None and body.id.strip():
        app_id = canonical_uuid(body.id)
        if app_id is None:
            raise InvalidInput(f"id: {body.id!r} is not a UUID")
        exists = conn.execute(select(t.application.c.id).where(t.application.c.id == app_id))
        if exists.first() is not None:
            raise Conflict(f"id: an application with id {app_id} already exists")
    else:
        app_id = str(uuid.uuid4())
    product_id = _blank_to_none(body.product_id)
    _check_product_id(conn, product_id, None)
    conn.execute(
        insert(t.application).values(
            id=app_id,
            name=body.name.strip(),
            description=body.description,
            product_id=product_id,
            created_ts=now,
        )
    )
    return app_id


def update_app(conn: Connection, app_id: str, body: m.AppUpdate) -> None:
    values: dict[str, Any] = {}
    sent = body.model_fields_set
    if body.name is not None:
        if not body.name.strip():
            raise InvalidInput("name: must not be blank")
        values["name"] = body.name.strip()
    if body.description is not None:
        values["description"] = body.description
    if "product_id" in sent:
        product_id = _blank_to_none(body.product_id)
        _check_product_id(conn, product_id, app_id)
        values["product_id"] = product_id
    if values:
        conn.execute(update(t.application).where(t.application.c.id == app_id).values(values))


def delete_app(conn: Connection, app_id: str) -> None:
    conn.execute(delete(t.application).where(t.application.c.id == app_id))


# ------------------------------------------------------------------------------ packages


def _action_model(r: Any) -> m.FlatcarAction:
    return m.FlatcarAction(
        id=r["id"],
        event=r["event"],
        chromeos_version=r["chromeos_version"],
        sha256=r["sha256"],
        needs_admin=bool(r["needs_admin"]),
        is_delta=bool(r["is_delta"]),
        disable_payload_backoff=bool(r["disable_payload_backoff"]),
        metadata_signature_rsa=r["metadata_signature_rsa"],
        metadata_size=r["metadata_size"],
        deadline=r["deadline"],
        created_ts=r["created_ts"],
    )


def _package_fields(r: Any, blacklist: list[str], action: m.FlatcarAction | None) -> dict[str, Any]:
    return {
        "id": r["id"],
        "type": r["type"],
        "version": r["version"],
        "url": r["url"],
        "filename": r["filename"],
        "description": r["description"],
        "size": str(r["size"]) if r["size"] is not None else None,
        "hash": r["hash"],
        "created_ts": r["created_ts"],
        "channels_blacklist": blacklist,
        "application_id": r["application_id"],
        "flatcar_action": action,
        "arch": r["arch"],
    }


def _package_extras(
    conn: Connection, ids: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, m.FlatcarAction]]:
    blacklists: dict[str, list[str]] = {}
    actions: dict[str, m.FlatcarAction] = {}
    bl = t.package_channel_blacklist
    fa = t.flatcar_action
    for chunk in _chunks(ids):
        for b in conn.execute(
            select(bl.c.package_id, bl.c.channel_id)
            .where(bl.c.package_id.in_(chunk))
            .order_by(bl.c.channel_id)
        ):
            blacklists.setdefault(b.package_id, []).append(b.channel_id)
        for a in conn.execute(select(fa).where(fa.c.package_id.in_(chunk))):
            actions[a._mapping["package_id"]] = _action_model(a._mapping)
    return blacklists, actions


def _package_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[m.Package]:
    ids = [r._mapping["id"] for r in rows]
    blacklists, actions = _package_extras(conn, ids)
    return [
        m.Package(**_package_fields(r._mapping, blacklists.get(i, []), actions.get(i)))
        for r, i in zip(rows, ids, strict=True)
    ]


def packages_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, m.Package]:
    wanted = sorted(set(ids))
    rows: list[Row[Any]] = []
    for chunk in _chunks(wanted):
        rows.extend(conn.execute(select(t.package).where(t.package.c.id.in_(chunk))).all())
    return {p.id: p for p in _package_models(conn, rows)}


def _package_row(conn: Connection, app_id: str, package_id: str) -> Row[Any]:
    p = t.package
    row = conn.execute(
        select(p).where(p.c.id == package_id.strip(), p.c.application_id == app_id)
    ).first()
    if row is None:
        raise NotFound(f"no package {package_id!r} in application {app_id}")
    return row


def get_package(conn: Connection, app_id: str, package_id: str) -> m.Package:
    return _package_models(conn, [_package_row(conn, app_id, package_id)])[0]


def list_packages(
    conn: Connection, app_id: str, limit: int, offset: int, search_version: str | None
) -> m.PackagesPage:
    """Newest version first (semver order, as Nebraska), optionally filtered by version text."""
    p = t.package
    query = select(p.c.id, p.c.version, p.c.arch).where(p.c.application_id == app_id)
    if search_version:
        query = query.where(p.c.version.icontains(search_version.strip(), autoescape=True))
    keys = list(conn.execute(query).all())
    keys.sort(key=lambda k: (version_key(k.version), k.arch, k.id), reverse=True)
    page_ids = [k.id for k in keys[offset : offset + limit]]
    by_id = packages_by_id(conn, page_ids)
    packages = [by_id[i] for i in page_ids]
    return m.PackagesPage(totalCount=len(keys), count=len(packages), packages=packages)


def _valid_version(version: str) -> str:
    text = version.strip()
    if parse_version(text) is None:
        raise InvalidInput(f"version: {version!r} is not a semantic version like '3815.2.0'")
    return text


def _check_version_free(
    conn: Connection, app_id: str, version: str, arch: int, package_id: str | None
) -> None:
    p = t.package
    query = select(p.c.id).where(
        p.c.application_id == app_id, p.c.version == version, p.c.arch == arch
    )
    if package_id is not None:
        query = query.where(p.c.id != package_id)
    if conn.execute(query).first() is not None:
        raise Conflict(f"version: this application already has a package {version} for arch {arch}")


def _check_blacklist(
    conn: Connection, app_id: str, arch: int, channel_ids: Sequence[str]
) -> list[str]:
    c = t.channel
    wanted = list(dict.fromkeys(i.strip() for i in channel_ids))
    found = {
        row.id: row.arch
        for row in conn.execute(
            select(c.c.id, c.c.arch).where(c.c.application_id == app_id, c.c.id.in_(wanted))
        )
    }
    for channel_id in wanted:
        if channel_id not in found:
            raise InvalidInput(f"channels_blacklist: no channel {channel_id!r} in this application")
        if not arch_compatible(found[channel_id], arch):
            raise InvalidInput(
                f"channels_blacklist: channel {channel_id} is for arch {found[channel_id]}, "
                f"the package for arch {arch}"
            )
    return wanted


def _action_values(action: m.FlatcarActionInput, only_sent: bool) -> dict[str, Any]:
    fields = [
        "event",
        "chromeos_version",
        "sha256",
        "needs_admin",
        "is_delta",
        "disable_payload_backoff",
        "metadata_signature_rsa",
        "metadata_size",
        "deadline",
    ]
    if only_sent:
        fields = [f for f in fields if f in action.model_fields_set or f == "sha256"]
    return {f: getattr(action, f) for f in fields}


def create_package(conn: Connection, app_id: str, body: m.PackageCreate, now: datetime) -> str:
    version = _valid_version(body.version)
    _check_version_free(conn, app_id, version, body.arch, None)
    blacklist = _check_blacklist(conn, app_id, body.arch, body.channels_blacklist or [])
    package_id = str(uuid.uuid4())
    conn.execute(
        insert(t.package).values(
            id=package_id,
            application_id=app_id,
            type=body.type,
            version=version,
            url=body.url.strip(),
            filename=body.filename,
            description=body.description,
            size=body.size,
            hash=body.hash,
            arch=body.arch,
            created_ts=now,
        )
    )
    for channel_id in blacklist:
        conn.execute(
            insert(t.package_channel_blacklist).values(package_id=package_id, channel_id=channel_id)
        )
    if body.type == PackageType.FLATCAR and body.flatcar_action is not None:
        conn.execute(
            insert(t.flatcar_action).values(
                id=str(uuid.uuid4()),
                package_id=package_id,
                created_ts=now,
                **_action_values(body.flatcar_action, only_sent=False),
            )
        )
    return package_id


def _set_blacklist(
    conn: Connection, app_id: str, package_id: str, arch: int, channel_ids: Sequence[str]
) -> None:
    wanted = set(_check_blacklist(conn, app_id, arch, channel_ids))
    bl = t.package_channel_blacklist
    current = set(
        conn.execute(select(bl.c.channel_id).where(bl.c.package_id == package_id)).scalars()
    )
    for channel_id in sorted(wanted - current):
        serving = conn.execute(
            select(t.channel.c.name).where(
                t.channel.c.id == channel_id, t.channel.c.package_id == package_id
            )
        ).scalar()
        if serving is not None:
            raise Conflict(
                f"channels_blacklist: channel {serving!r} serves this package; "
                "point it at another package first"
            )
        floors = t.channel_package_floors
        is_floor = conn.execute(
            select(floors.c.package_id).where(
                floors.c.channel_id == channel_id, floors.c.package_id == package_id
            )
        ).first()
        if is_floor is not None:
            raise Conflict(
                f"channels_blacklist: this package is a floor of channel {channel_id}; "
                "remove the floor first"
            )
        conn.execute(insert(bl).values(package_id=package_id, channel_id=channel_id))
    gone = sorted(current - wanted)
    if gone:
        conn.execute(delete(bl).where(bl.c.package_id == package_id, bl.c.channel_id.in_(gone)))


def update_package(
    conn: Connection, app_id: str, package_id: str, body: m.PackageUpdate, now: datetime
) -> None:
    row = _package_row(conn, app_id, package_id)._mapping
    sent = body.model_fields_set
    if body.arch is not None and body.arch != row["arch"]:
        raise InvalidInput("arch: a package's arch cannot change; create a new package")
    values: dict[str, Any] = {}
    if body.version is not None:
        version = _valid_version(body.version)
        if version != row["version"]:
            _check_version_free(conn, app_id, version, row["arch"], row["id"])
        values["version"] = version
    if body.type is not None:
        values["type"] = body.type
    if body.url is not None:
        values["url"] = body.url.strip()
    for field in ("filename", "description", "size", "hash"):
        if field in sent:
            values[field] = getattr(body, field)
    if values:
        conn.execute(update(t.package).where(t.package.c.id == row["id"]).values(values))
    if body.channels_blacklist is not None:
        _set_blacklist(conn, app_id, row["id"], row["arch"], body.channels_blacklist)
    new_type = body.type if body.type is not None else row["type"]
    if body.flatcar_action is not None and new_type == PackageType.FLATCAR:
        fa = t.flatcar_action
        existing = conn.execute(select(fa.c.id).where(fa.c.package_id == row["id"])).scalar()
        if existing is None:
            conn.execute(
                insert(fa).values(
                    id=str(uuid.uuid4()),
                    package_id=row["id"],
                    created_ts=now,
                    **_action_values(body.flatcar_action, only_sent=False),
                )
            )
        else:
            conn.execute(
                update(fa)
                .where(fa.c.id == existing)
                .values(_action_values(body.flatcar_action, only_sent=True))
            )


def delete_package(conn: Connection, app_id: str, package_id: str) -> None:
    row = _package_row(conn, app_id, package_id)._mapping
    floors = t.channel_package_floors
    if conn.execute(select(floors.c.channel_id).where(floors.c.package_id == row["id"])).first():
        raise Conflict(
            f"package {row['version']} is a floor of a channel; remove the floor before deleting"
        )
    serving = (
        conn.execute(select(t.channel.c.name).where(t.channel.c.package_id == row["id"]))
        .scalars()
        .all()
    )
    if serving:
        raise Conflict(
            f"package {row['version']} is served by channel(s) {', '.join(sorted(serving))}; "
            "point them at another package before deleting"
        )
    conn.execute(delete(t.package).where(t.package.c.id == row["id"]))


# ------------------------------------------------------------------------------ channels


def _channel_rows(conn: Connection, app_id: str) -> list[Row[Any]]:
    c = t.channel
    return list(
        conn.execute(
            select(c).where(c.c.application_id == app_id).order_by(c.c.name, c.c.arch, c.c.id)
        ).all()
    )


def _channel_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[m.Channel]:
    packages = packages_by_id(
        conn, [r._mapping["package_id"] for r in rows if r._mapping["package_id"]]
    )
    out = []
    for row in rows:
        r = row._mapping
        out.append(
            m.Channel(
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


def channels_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, m.Channel]:
    wanted = sorted(set(ids))
    rows: list[Row[Any]] = []
    for chunk in _chunks(wanted):
        rows.extend(conn.execute(select(t.channel).where(t.channel.c.id.in_(chunk))).all())
    return {c.id: c for c in _channel_models(conn, rows)}


def _channel_row(conn: Connection, app_id: str | None, channel_id: str) -> Row[Any]:
    c = t.channel
    query = select(c).where(c.c.id == channel_id.strip())
    if app_id is not None:
        query = query.where(c.c.application_id == app_id)
    row = conn.execute(query).first()
    if row is None:
        where = f" in application {app_id}" if app_id else ""
        raise NotFound(f"no channel {channel_id!r}{where}")
    return row


def get_channel(conn: Connection, app_id: str | None, channel_id: str) -> m.Channel:
    return _channel_models(conn, [_channel_row(conn, app_id, channel_id)])[0]


def list_channels(conn: Connection, app_id: str, limit: int, offset: int) -> m.ChannelsPage:
    rows = _channel_rows(conn, app_id)
    page = _channel_models(conn, rows[offset : offset + limit])
    return m.ChannelsPage(totalCount=len(rows), count=len(page), channels=page)


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


def create_channel(conn: Connection, app_id: str, body: m.ChannelCreate, now: datetime) -> str:
    name = body.name.strip()
    _check_channel_name_free(conn, app_id, name, body.arch, None)
    package_id = _blank_to_none(body.package_id)
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
    conn: Connection, app_id: str, channel_id: str, body: m.ChannelUpdate, now: datetime
) -> None:
    """Apply the change; a new package is logged as ChannelPackageUpdated (as Nebraska)."""
    row = _channel_row(conn, app_id, channel_id)._mapping
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
    if "package_id" in body.model_fields_set:
        package_id = _blank_to_none(body.package_id)
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
    row = _channel_row(conn, app_id, channel_id)
    conn.execute(delete(t.channel).where(t.channel.c.id == row.id))


# -------------------------------------------------------------------------------- floors


def list_floors(conn: Connection, channel_id: str, limit: int, offset: int) -> m.FloorsPage:
    """A channel's floor packages, oldest version first."""
    f = t.channel_package_floors
    rows = list(
        conn.execute(
            select(t.package, f.c.floor_reason)
            .select_from(f.join(t.package, f.c.package_id == t.package.c.id))
            .where(f.c.channel_id == channel_id)
        ).all()
    )
    rows.sort(key=lambda r: (version_key(r.version), r.id))
    page_rows = rows[offset : offset + limit]
    packages = _package_models(conn, page_rows)
    floors = [
        m.FloorPackage(**p.model_dump(), floor_reason=r.floor_reason)
        for p, r in zip(packages, page_rows, strict=True)
    ]
    total = len(rows)
    return m.FloorsPage(
        packages=floors,
        current_page=offset // limit + 1,
        last_page=max(1, -(-total // limit)),
        total_count=total,
    )


def add_floor(
    conn: Connection, channel_id: str, package_id: str, reason: str | None, now: datetime
) -> m.ChannelFloor:
    channel = _channel_row(conn, None, channel_id)._mapping
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
    return m.ChannelFloor(
        channel_id=channel["id"], package_id=p["id"], floor_reason=reason, created_ts=created
    )


def remove_floor(conn: Connection, channel_id: str, package_id: str) -> None:
    f = t.channel_package_floors
    result = conn.execute(
        delete(f).where(f.c.channel_id == channel_id.strip(), f.c.package_id == package_id.strip())
    )
    if result.rowcount == 0:
        raise NotFound(f"package {package_id!r} is not a floor of channel {channel_id!r}")


def package_floor_channels(conn: Connection, app_id: str, package_id: str) -> m.FloorChannels:
    row = _package_row(conn, app_id, package_id)
    f = t.channel_package_floors
    floors = conn.execute(
        select(f.c.channel_id, f.c.floor_reason).where(f.c.package_id == row.id)
    ).all()
    channels = channels_by_id(conn, [fl.channel_id for fl in floors])
    items = [
        m.FloorChannel(channel=channels[fl.channel_id], floor_reason=fl.floor_reason)
        for fl in floors
        if fl.channel_id in channels
    ]
    items.sort(key=lambda i: i.channel.name)
    return m.FloorChannels(channels=items, count=len(items))


# -------------------------------------------------------------------------------- groups


def _group_rows(conn: Connection, app_id: str) -> list[Row[Any]]:
    g = t.groups
    return list(
        conn.execute(
            select(g).where(g.c.application_id == app_id).order_by(g.c.created_ts.desc(), g.c.id)
        ).all()
    )


def _group_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[m.Group]:
    channels = channels_by_id(
        conn, [r._mapping["channel_id"] for r in rows if r._mapping["channel_id"]]
    )
    out = []
    for row in rows:
        r = row._mapping
        out.append(
            m.Group(
                id=r["id"],
                name=r["name"],
                description=r["description"] or "",
                created_ts=r["created_ts"],
                rollout_in_progress=bool(r["rollout_in_progress"]),
                application_id=r["application_id"],
                channel_id=r["channel_id"],
                policy_updates_enabled=bool(r["policy_updates_enabled"]),
                policy_safe_mode=bool(r["policy_safe_mode"]),
                policy_office_hours=bool(r["policy_office_hours"]),
                policy_timezone=r["policy_timezone"],
                policy_period_interval=r["policy_period_interval"],
                policy_max_updates_per_period=r["policy_max_updates_per_period"],
                policy_update_timeout=r["policy_update_timeout"],
                policy_office_hours_spec=r["policy_office_hours_spec"],
                channel=channels.get(r["channel_id"]) if r["channel_id"] else None,
                track=r["track"],
            )
        )
    return out


def group_row(conn: Connection, app_id: str, group_id: str) -> Row[Any]:
    g = t.groups
    row = conn.execute(
        select(g).where(g.c.id == group_id.strip(), g.c.application_id == app_id)
    ).first()
    if row is None:
        raise NotFound(f"no group {group_id!r} in application {app_id}")
    return row


def get_group(conn: Connection, app_id: str, group_id: str) -> m.Group:
    return _group_models(conn, [group_row(conn, app_id, group_id)])[0]


def list_groups(conn: Connection, app_id: str, limit: int, offset: int) -> m.GroupsPage:
    rows = _group_rows(conn, app_id)
    page = _group_models(conn, rows[offset : offset + limit])
    return m.GroupsPage(totalCount=len(rows), count=len(page), groups=page)


def _known_timezone(name: str) -> bool:
    try:
        return is_valid_timezone(name)
    except OSError:  # zoneinfo reads a file named after the zone: "name too long" and such
        return False


def _check_policy(values: dict[str, Any]) -> None:
    """Validate the group's policy as it will be stored (after merging an update)."""
    for field in ("policy_period_interval", "policy_update_timeout"):
        try:
            parse_interval(values[field])
        except InvalidInput as exc:
            raise InvalidInput(f"{field}: {exc}") from exc
        except OverflowError as exc:  # "9999999999999 minutes"
            raise InvalidInput(f"{field}: {values[field]!r} is too long") from exc
    timezone = values["policy_timezone"]
    if timezone is not None and not _known_timezone(timezone):
        raise InvalidInput(
            f"policy_timezone: unknown time zone {timezone!r}; "
            "use an IANA name like 'Europe/Berlin'"
        )
    if values["policy_office_hours"] and timezone is None:
        raise InvalidInput(
            "policy_timezone: required when policy_office_hours is on (an IANA name like "
            "'Europe/Berlin')"
        )
    try:
        parse_office_hours(values["policy_office_hours_spec"])
    except InvalidInput as exc:
        raise InvalidInput(f"policy_office_hours_spec: {exc}") from exc


def _check_group_channel(conn: Connection, app_id: str, channel_id: str | None) -> str | None:
    channel_id = _blank_to_none(channel_id)
    if channel_id is None:
        return None
    found = conn.execute(
        select(t.channel.c.id).where(
            t.channel.c.id == channel_id, t.channel.c.application_id == app_id
        )
    ).scalar()
    if found is None:
        raise InvalidInput(f"channel_id: no channel {channel_id!r} in this application")
    return str(found)


def _check_group_name_free(conn: Connection, app_id: str, name: str, group_id: str | None) -> None:
    g = t.groups
    query = select(g.c.id).where(g.c.application_id == app_id, g.c.name == name)
    if group_id is not None:
        query = query.where(g.c.id != group_id)
    if conn.execute(query).first() is not None:
        raise Conflict(f"name: this application already has a group {name!r}")


_POLICY_FIELDS = (
    "policy_updates_enabled",
    "policy_safe_mode",
    "policy_office_hours",
    "policy_timezone",
    "policy_period_interval",
    "policy_max_updates_per_period",
    "policy_update_timeout",
    "policy_office_hours_spec",
)


def create_group(conn: Connection, app_id: str, body: m.GroupCreate, now: datetime) -> str:
    values: dict[str, Any] = {f: getattr(body, f) for f in _POLICY_FIELDS}
    values["policy_timezone"] = _blank_to_none(body.policy_timezone)
    for field in ("policy_period_interval", "policy_update_timeout", "policy_office_hours_spec"):
        values[field] = values[field].strip()
    _check_policy(values)
    name = body.name.strip()
    _check_group_name_free(conn, app_id, name, None)
    group_id = str(uuid.uuid4())
    conn.execute(
        insert(t.groups).values(
            id=group_id,
            name=name,
            description=body.description,
            application_id=app_id,
            channel_id=_check_group_channel(conn, app_id, body.channel_id),
            track=body.track.strip() or group_id,
            created_ts=now,
            **values,
        )
    )
    return group_id


def update_group(conn: Connection, app_id: str, group_id: str, body: m.GroupUpdate) -> None:
    row = group_row(conn, app_id, group_id)._mapping
    sent = body.model_fields_set
    merged: dict[str, Any] = {f: row[f] for f in _POLICY_FIELDS}
    for field in _POLICY_FIELDS:
        value = getattr(body, field)
        if field == "policy_timezone":
            if field in sent:
                merged[field] = _blank_to_none(value)
        elif value is not None:
            merged[field] = value.strip() if isinstance(value, str) else value
    _check_policy(merged)
    values: dict[str, Any] = dict(merged)
    if body.name is not None:
        name = body.name.strip()
        if name != row["name"]:
            _check_group_name_free(conn, app_id, name, row["id"])
        values["name"] = name
    if body.description is not None:
        values["description"] = body.description
    if "channel_id" in sent:
        values["channel_id"] = _check_group_channel(conn, app_id, body.channel_id)
    if body.track is not None:
        values["track"] = body.track.strip() or row["id"]
    conn.execute(update(t.groups).where(t.groups.c.id == row["id"]).values(values))


def delete_group(conn: Connection, app_id: str, group_id: str) -> None:
    row = group_row(conn, app_id, group_id)
    conn.execute(delete(t.groups).where(t.groups.c.id == row.id))
