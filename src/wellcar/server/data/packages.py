"""Packages (update payloads) of an application, their postinstall action and blacklist."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from wellcar.server.data.batches import in_batches
from wellcar.server.db import schema as t
from wellcar.server.errors import Conflict, InvalidInput, NotFound
from wellcar.server.fleet_codes import Arch, PackageType
from wellcar.server.semver import parse_semver, sort_key


@dataclass(frozen=True, slots=True)
class FlatcarAction:
    id: str
    event: str
    chromeos_version: str
    sha256: str
    needs_admin: bool
    is_delta: bool
    disable_payload_backoff: bool
    metadata_signature_rsa: str
    metadata_size: str
    deadline: str
    created_ts: datetime


@dataclass(frozen=True, slots=True)
class PackageFile:
    """An extra file of a package (Nebraska's File): another payload in the same manifest."""

    id: int
    package_id: str
    name: str | None
    size: int | None
    hash: str | None
    hash256: str | None
    created_ts: datetime


@dataclass(frozen=True, slots=True)
class NewPackageFile:
    name: str | None
    size: int | None
    hash: str | None
    hash256: str | None


@dataclass(frozen=True, slots=True)
class Package:
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
    extra_files: list[PackageFile] | None = None  # None when it has none, as Nebraska


@dataclass(frozen=True, slots=True)
class PackagesPage:
    total: int
    packages: list[Package]


@dataclass(frozen=True, slots=True)
class FlatcarActionFields:
    """A postinstall action as sent; `sent` names the fields the caller gave."""

    sha256: str
    event: str
    chromeos_version: str
    needs_admin: bool
    is_delta: bool
    disable_payload_backoff: bool
    metadata_signature_rsa: str
    metadata_size: str
    deadline: str
    sent: frozenset[str]


@dataclass(frozen=True, slots=True)
class NewPackage:
    type: int
    version: str
    url: str
    filename: str | None
    description: str | None
    size: int | None
    hash: str | None
    arch: int
    channels_blacklist: list[str] | None
    flatcar_action: FlatcarActionFields | None
    extra_files: list[NewPackageFile] | None = None


@dataclass(frozen=True, slots=True)
class PackageChanges:
    """None keeps a value; `sent` tells a field given as null (cleared) from one left out."""

    type: int | None
    version: str | None
    url: str | None
    filename: str | None
    description: str | None
    size: int | None
    hash: str | None
    arch: int | None
    channels_blacklist: list[str] | None
    flatcar_action: FlatcarActionFields | None
    sent: frozenset[str]
    extra_files: list[NewPackageFile] | None = None  # sent: replaces the whole list


def arch_compatible(channel_arch: int, package_arch: int) -> bool:
    """A channel may serve a package of its own arch, or one built for all arches."""
    return package_arch in (channel_arch, int(Arch.ALL))


def _action(r: Any) -> FlatcarAction:
    return FlatcarAction(
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


def package_fields(
    r: Any,
    blacklist: list[str],
    action: FlatcarAction | None,
    files: list[PackageFile] | None = None,
) -> dict[str, Any]:
    """A package row's fields, as keyword arguments of Package (and FloorPackage)."""
    return {
        "id": r["id"],
        "type": r["type"],
        "version": r["version"],
        "url": r["url"],
        "filename": r["filename"],
        "description": r["description"],
        "size": r["size"],
        "hash": r["hash"],
        "created_ts": r["created_ts"],
        "channels_blacklist": blacklist,
        "application_id": r["application_id"],
        "flatcar_action": action,
        "arch": r["arch"],
        "extra_files": files or None,
    }


def files_of_packages(conn: Connection, ids: Sequence[str]) -> dict[str, list[PackageFile]]:
    """Each package's extra files, in the order they were given."""
    found: dict[str, list[PackageFile]] = {}
    pf = t.package_file
    for batch in in_batches(list(ids)):
        for r in conn.execute(select(pf).where(pf.c.package_id.in_(batch)).order_by(pf.c.id)):
            m = r._mapping
            found.setdefault(m["package_id"], []).append(
                PackageFile(
                    m["id"],
                    m["package_id"],
                    m["name"],
                    m["size"],
                    m["hash"],
                    m["hash256"],
                    m["created_ts"],
                )
            )
    return found


def _set_files(
    conn: Connection, package_id: str, files: Sequence[NewPackageFile], now: datetime
) -> None:
    """Replace the package's extra files (as Nebraska: new rows, new ids)."""
    conn.execute(delete(t.package_file).where(t.package_file.c.package_id == package_id))
    for f in files:
        conn.execute(
            insert(t.package_file).values(
                package_id=package_id, name=f.name, size=f.size, hash=f.hash,
                hash256=f.hash256, created_ts=now,
            )
        )  # fmt: skip


def _package_extras(
    conn: Connection, ids: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, FlatcarAction]]:
    blacklists: dict[str, list[str]] = {}
    actions: dict[str, FlatcarAction] = {}
    bl = t.package_channel_blacklist
    fa = t.flatcar_action
    for batch in in_batches(ids):
        for b in conn.execute(
            select(bl.c.package_id, bl.c.channel_id)
            .where(bl.c.package_id.in_(batch))
            .order_by(bl.c.channel_id)
        ):
            blacklists.setdefault(b.package_id, []).append(b.channel_id)
        for a in conn.execute(select(fa).where(fa.c.package_id.in_(batch))):
            actions[a._mapping["package_id"]] = _action(a._mapping)
    return blacklists, actions


def package_field_sets(conn: Connection, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """The fields of each package row, with its blacklist and action (batched queries)."""
    ids = [r._mapping["id"] for r in rows]
    blacklists, actions = _package_extras(conn, ids)
    files = files_of_packages(conn, ids)
    return [
        package_fields(r._mapping, blacklists.get(i, []), actions.get(i), files.get(i))
        for r, i in zip(rows, ids, strict=True)
    ]


def _packages(conn: Connection, rows: Sequence[Row[Any]]) -> list[Package]:
    return [Package(**fields) for fields in package_field_sets(conn, rows)]


def packages_by_id(conn: Connection, ids: Iterable[str]) -> dict[str, Package]:
    wanted = sorted(set(ids))
    rows: list[Row[Any]] = []
    for batch in in_batches(wanted):
        rows.extend(conn.execute(select(t.package).where(t.package.c.id.in_(batch))).all())
    return {p.id: p for p in _packages(conn, rows)}


def package_row(conn: Connection, app_id: str, package_id: str) -> Row[Any]:
    p = t.package
    row = conn.execute(
        select(p).where(p.c.id == package_id.strip(), p.c.application_id == app_id)
    ).first()
    if row is None:
        raise NotFound(f"no package {package_id!r} in application {app_id}")
    return row


def get_package(conn: Connection, app_id: str, package_id: str) -> Package:
    return _packages(conn, [package_row(conn, app_id, package_id)])[0]


def list_packages(
    conn: Connection, app_id: str, limit: int, offset: int, search_version: str | None
) -> PackagesPage:
    """Newest version first (semver order, as Nebraska), optionally filtered by version text."""
    p = t.package
    query = select(p.c.id, p.c.version, p.c.arch).where(p.c.application_id == app_id)
    if search_version:
        query = query.where(p.c.version.icontains(search_version.strip(), autoescape=True))
    keys = list(conn.execute(query).all())
    keys.sort(key=lambda k: (sort_key(k.version), k.arch, k.id), reverse=True)
    page_ids = [k.id for k in keys[offset : offset + limit]]
    by_id = packages_by_id(conn, page_ids)
    return PackagesPage(total=len(keys), packages=[by_id[i] for i in page_ids])


def _valid_version(version: str) -> str:
    text = version.strip()
    if parse_semver(text) is None:
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


_ACTION_COLUMNS = (
    "event",
    "chromeos_version",
    "sha256",
    "needs_admin",
    "is_delta",
    "disable_payload_backoff",
    "metadata_signature_rsa",
    "metadata_size",
    "deadline",
)


def _action_values(action: FlatcarActionFields, only_sent: bool) -> dict[str, Any]:
    fields = list(_ACTION_COLUMNS)
    if only_sent:
        fields = [f for f in fields if f in action.sent or f == "sha256"]
    return {f: getattr(action, f) for f in fields}


def create_package(conn: Connection, app_id: str, body: NewPackage, now: datetime) -> str:
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
    if body.extra_files:
        _set_files(conn, package_id, body.extra_files, now)
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
    conn: Connection, app_id: str, package_id: str, body: PackageChanges, now: datetime
) -> None:
    row = package_row(conn, app_id, package_id)._mapping
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
        if field in body.sent:
            values[field] = getattr(body, field)
    if values:
        conn.execute(update(t.package).where(t.package.c.id == row["id"]).values(values))
    if body.channels_blacklist is not None:
        _set_blacklist(conn, app_id, row["id"], row["arch"], body.channels_blacklist)
    if "extra_files" in body.sent:
        _set_files(conn, row["id"], body.extra_files or [], now)
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
    row = package_row(conn, app_id, package_id)._mapping
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
