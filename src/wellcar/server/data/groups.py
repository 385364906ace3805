"""Groups of an application: their channel, Omaha track and rollout policy."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from wellcar.server.data.channels import Channel, channels_by_id
from wellcar.server.data.text_input import blank_to_none
from wellcar.server.db import schema as t
from wellcar.server.errors import Conflict, InvalidInput, NotFound
from wellcar.server.intervals import parse_interval
from wellcar.server.office_hours import is_valid_timezone, parse_office_hours


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    description: str
    created_ts: datetime
    rollout_in_progress: bool
    application_id: str
    channel_id: str | None
    policy_updates_enabled: bool
    policy_safe_mode: bool
    policy_office_hours: bool
    policy_timezone: str | None
    policy_period_interval: str
    policy_max_updates_per_period: int
    policy_update_timeout: str
    policy_office_hours_spec: str
    channel: Channel | None
    track: str


@dataclass(frozen=True, slots=True)
class GroupsPage:
    total: int
    groups: list[Group]


@dataclass(frozen=True, slots=True)
class NewGroup:
    name: str
    description: str
    channel_id: str | None
    track: str
    policy_updates_enabled: bool
    policy_safe_mode: bool
    policy_office_hours: bool
    policy_timezone: str | None
    policy_period_interval: str
    policy_max_updates_per_period: int
    policy_update_timeout: str
    policy_office_hours_spec: str


@dataclass(frozen=True, slots=True)
class GroupChanges:
    """None keeps a value; `sent` tells a channel_id or policy_timezone given as null
    (cleared) from one left out."""

    name: str | None
    description: str | None
    channel_id: str | None
    track: str | None
    policy_updates_enabled: bool | None
    policy_safe_mode: bool | None
    policy_office_hours: bool | None
    policy_timezone: str | None
    policy_period_interval: str | None
    policy_max_updates_per_period: int | None
    policy_update_timeout: str | None
    policy_office_hours_spec: str | None
    sent: frozenset[str]


def group_rows(conn: Connection, app_id: str) -> list[Row[Any]]:
    g = t.groups
    return list(
        conn.execute(
            select(g).where(g.c.application_id == app_id).order_by(g.c.created_ts.desc(), g.c.id)
        ).all()
    )


def groups_from_rows(conn: Connection, rows: Sequence[Row[Any]]) -> list[Group]:
    channels = channels_by_id(
        conn, [r._mapping["channel_id"] for r in rows if r._mapping["channel_id"]]
    )
    out = []
    for row in rows:
        r = row._mapping
        out.append(
            Group(
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


def get_group(conn: Connection, app_id: str, group_id: str) -> Group:
    return groups_from_rows(conn, [group_row(conn, app_id, group_id)])[0]


def list_groups(conn: Connection, app_id: str, limit: int, offset: int) -> GroupsPage:
    rows = group_rows(conn, app_id)
    page = groups_from_rows(conn, rows[offset : offset + limit])
    return GroupsPage(total=len(rows), groups=page)


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
    channel_id = blank_to_none(channel_id)
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


def create_group(conn: Connection, app_id: str, body: NewGroup, now: datetime) -> str:
    values: dict[str, Any] = {f: getattr(body, f) for f in _POLICY_FIELDS}
    values["policy_timezone"] = blank_to_none(body.policy_timezone)
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


def update_group(conn: Connection, app_id: str, group_id: str, body: GroupChanges) -> None:
    row = group_row(conn, app_id, group_id)._mapping
    merged: dict[str, Any] = {f: row[f] for f in _POLICY_FIELDS}
    for field in _POLICY_FIELDS:
        value = getattr(body, field)
        if field == "policy_timezone":
            if field in body.sent:
                merged[field] = blank_to_none(value)
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
    if "channel_id" in body.sent:
        values["channel_id"] = _check_group_channel(conn, app_id, body.channel_id)
    if body.track is not None:
        values["track"] = body.track.strip() or row["id"]
    conn.execute(update(t.groups).where(t.groups.c.id == row["id"]).values(values))


def delete_group(conn: Connection, app_id: str, group_id: str) -> None:
    row = group_row(conn, app_id, group_id)
    conn.execute(delete(t.groups).where(t.groups.c.id == row.id))
