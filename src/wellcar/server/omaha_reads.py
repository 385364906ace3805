"""What an Omaha check-in reads: the client's group, its policy and what it is offered.

One statement per lookup, as the check-in's cost depends on it. The application an
Omaha `appid` names is found by `data.applications.find_application`, the same rule as
the REST API's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import Arch, PackageType
from wellcar.server.intervals import parse_interval
from wellcar.server.policy import RolloutPolicy
from wellcar.server.semver import Version, parse_semver


@dataclass(frozen=True, slots=True)
class PostinstallAction:
    event: str
    sha256: str
    chromeos_version: str
    needs_admin: bool
    is_delta: bool
    disable_payload_backoff: bool
    metadata_signature_rsa: str
    metadata_size: str
    deadline: str


@dataclass(frozen=True, slots=True)
class OfferedPackage:
    id: str
    type: PackageType
    version: str
    url: str
    filename: str
    size: int | None
    hash: str | None
    action: PostinstallAction | None
    floor_reason: str | None = None
    # Extra files (Nebraska's package_file), read only when the package is offered.
    extra_files: tuple[OfferedFile, ...] = ()


@dataclass(frozen=True, slots=True)
class OfferedFile:
    name: str
    size: int | None
    hash: str | None
    hash256: str | None


def with_extra_files(conn: Connection, packages: list[OfferedPackage]) -> list[OfferedPackage]:
    """The offered packages with their extra files (one query for all of them)."""
    pf = t.package_file
    rows = conn.execute(
        select(pf.c.package_id, pf.c.name, pf.c.size, pf.c.hash, pf.c.hash256)
        .where(pf.c.package_id.in_([p.id for p in packages]))
        .order_by(pf.c.id)
    ).all()
    if not rows:
        return packages
    files: dict[str, list[OfferedFile]] = {}
    for r in rows:
        files.setdefault(r.package_id, []).append(OfferedFile(r.name or "", r.size, r.hash,
                                                              r.hash256))  # fmt: skip
    return [replace(p, extra_files=tuple(files.get(p.id, ()))) for p in packages]


@dataclass(frozen=True, slots=True)
class GroupView:
    id: str
    application_id: str
    name: str
    channel_id: str | None
    package: OfferedPackage | None  # the channel's package
    package_blacklisted: bool  # the channel's package is blacklisted for this channel
    has_floors: bool  # the channel has floor packages (else no need to look them up)
    policy: RolloutPolicy
    rollout_in_progress: bool


def find_group(conn: Connection, app_id: str, track: str, arch: Arch) -> str | None:
    """The newest group of the app whose track matches, on a channel of the client's arch."""
    query = (
        select(t.groups.c.id)
        .select_from(t.groups.outerjoin(t.channel, t.groups.c.channel_id == t.channel.c.id))
        .where(
            t.groups.c.application_id == app_id,
            t.groups.c.track == track,
            or_(t.channel.c.id.is_(None), t.channel.c.arch.in_([int(arch), int(Arch.ALL)])),
        )
        .order_by(t.groups.c.created_ts.desc())
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return str(found) if found is not None else None


def _policy_from_row(row: object) -> RolloutPolicy:
    g = row._mapping  # type: ignore[attr-defined]
    return RolloutPolicy(
        updates_enabled=bool(g["policy_updates_enabled"]),
        safe_mode=bool(g["policy_safe_mode"]),
        office_hours=bool(g["policy_office_hours"]),
        timezone=g["policy_timezone"],
        office_hours_spec=g["policy_office_hours_spec"],
        period_interval=parse_interval(g["policy_period_interval"]),
        max_updates_per_period=int(g["policy_max_updates_per_period"]),
        update_timeout=parse_interval(g["policy_update_timeout"]),
    )


_PKG_COLS = [
    t.package.c.id.label("pkg_id"),
    t.package.c.type.label("pkg_type"),
    t.package.c.version.label("pkg_version"),
    t.package.c.url.label("pkg_url"),
    t.package.c.filename.label("pkg_filename"),
    t.package.c.size.label("pkg_size"),
    t.package.c.hash.label("pkg_hash"),
    t.flatcar_action.c.id.label("act_id"),
    t.flatcar_action.c.event.label("act_event"),
    t.flatcar_action.c.sha256.label("act_sha256"),
    t.flatcar_action.c.chromeos_version.label("act_chromeos_version"),
    t.flatcar_action.c.needs_admin.label("act_needs_admin"),
    t.flatcar_action.c.is_delta.label("act_is_delta"),
    t.flatcar_action.c.disable_payload_backoff.label("act_disable_payload_backoff"),
    t.flatcar_action.c.metadata_signature_rsa.label("act_metadata_signature_rsa"),
    t.flatcar_action.c.metadata_size.label("act_metadata_size"),
    t.flatcar_action.c.deadline.label("act_deadline"),
]


def _package_from_row(m: object, floor_reason: str | None = None) -> OfferedPackage | None:
    r = m._mapping  # type: ignore[attr-defined]
    if r["pkg_id"] is None:
        return None
    action = None
    if r["act_id"] is not None:
        action = PostinstallAction(
            event=r["act_event"],
            sha256=r["act_sha256"],
            chromeos_version=r["act_chromeos_version"],
            needs_admin=bool(r["act_needs_admin"]),
            is_delta=bool(r["act_is_delta"]),
            disable_payload_backoff=bool(r["act_disable_payload_backoff"]),
            metadata_signature_rsa=r["act_metadata_signature_rsa"],
            metadata_size=r["act_metadata_size"],
            deadline=r["act_deadline"],
        )
    return OfferedPackage(
        id=r["pkg_id"],
        type=PackageType(r["pkg_type"]),
        version=r["pkg_version"],
        url=r["pkg_url"],
        filename=r["pkg_filename"] or "",
        size=r["pkg_size"],
        hash=r["pkg_hash"],
        action=action,
        floor_reason=floor_reason,
    )


def _build_load_group(*, for_update: bool) -> Select[Any]:
    blacklisted = (
        select(t.package_channel_blacklist.c.package_id)
        .where(
            t.package_channel_blacklist.c.package_id == t.channel.c.package_id,
            t.package_channel_blacklist.c.channel_id == t.channel.c.id,
        )
        .exists()
        .label("blacklisted")
    )
    has_floors = (
        select(t.channel_package_floors.c.package_id)
        .where(t.channel_package_floors.c.channel_id == t.groups.c.channel_id)
        .exists()
        .label("has_floors")
    )
    query = (
        select(t.groups, blacklisted, has_floors, *_PKG_COLS)
        .select_from(
            t.groups.outerjoin(t.channel, t.groups.c.channel_id == t.channel.c.id)
            .outerjoin(t.package, t.channel.c.package_id == t.package.c.id)
            .outerjoin(t.flatcar_action, t.flatcar_action.c.package_id == t.package.c.id)
        )
        .where(t.groups.c.id == bindparam("b_group_id"))
    )
    if for_update:
        # NO KEY UPDATE: inserts referencing the group hold KEY SHARE locks on it;
        # a plain FOR UPDATE would deadlock against them.
        query = query.with_for_update(of=t.groups, key_share=True)
    return query


# Built once: constructing this join and its cache key cost more than running it.
_LOAD_GROUP = _build_load_group(for_update=False)
_LOAD_GROUP_LOCKED = _build_load_group(for_update=True)


def load_group(conn: Connection, group_id: str, *, for_update: bool = False) -> GroupView | None:
    """The group with its channel's package; `for_update` locks the row (PostgreSQL)."""
    query = _LOAD_GROUP_LOCKED if for_update else _LOAD_GROUP
    row = conn.execute(query, {"b_group_id": group_id}).first()
    if row is None:
        return None
    g = row._mapping
    return GroupView(
        id=g["id"],
        application_id=g["application_id"],
        name=g["name"],
        channel_id=g["channel_id"],
        package=_package_from_row(row),
        package_blacklisted=bool(g["blacklisted"]),
        has_floors=bool(g["has_floors"]),
        policy=_policy_from_row(row),
        rollout_in_progress=bool(g["rollout_in_progress"]),
    )


def floors_above(
    conn: Connection, channel_id: str, version: str, target: str
) -> list[OfferedPackage]:
    """The channel's floor packages newer than `version` and older than `target`, oldest first."""
    query = (
        select(t.channel_package_floors.c.floor_reason, *_PKG_COLS)
        .select_from(
            t.channel_package_floors.join(
                t.package, t.channel_package_floors.c.package_id == t.package.c.id
            ).outerjoin(t.flatcar_action, t.flatcar_action.c.package_id == t.package.c.id)
        )
        .where(and_(t.channel_package_floors.c.channel_id == channel_id))
    )
    current = parse_semver(version)
    goal = parse_semver(target)
    floors: list[OfferedPackage] = []
    for row in conn.execute(query):
        pkg = _package_from_row(row, row._mapping["floor_reason"])
        pv = parse_semver(pkg.version) if pkg else None
        if pkg is None or pv is None or current is None or goal is None:
            continue
        if current < pv <= goal:
            floors.append(pkg)
    floors.sort(key=lambda p: parse_semver(p.version) or Version(0, 0, 0))
    return floors
