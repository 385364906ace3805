"""Applications: how a client or a caller names one, and the app with its groups and channels."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from wellcar.server.data.channels import Channel, channel_rows, channels_from_rows
from wellcar.server.data.fake_instances import not_fake
from wellcar.server.data.groups import Group, group_rows, groups_from_rows
from wellcar.server.data.text_input import blank_to_none
from wellcar.server.db import schema as t
from wellcar.server.errors import Conflict, InvalidInput, NotFound
from wellcar.server.policy import ACTIVITY_WINDOW


@dataclass(frozen=True, slots=True)
class Application:
    id: str
    product_id: str | None
    name: str
    description: str
    created_ts: datetime
    groups: list[Group]
    channels: list[Channel]
    instance_count: int  # instances seen in the last 24 hours


@dataclass(frozen=True, slots=True)
class ApplicationsPage:
    total: int
    applications: list[Application]


@dataclass(frozen=True, slots=True)
class NewApplication:
    id: str | None  # None or blank: a new UUID
    name: str
    description: str
    product_id: str | None


@dataclass(frozen=True, slots=True)
class ApplicationChanges:
    """None keeps a value; `sent` tells a product_id given as null (cleared) from one left out."""

    name: str | None
    description: str | None
    product_id: str | None
    sent: frozenset[str]


def canonical_uuid(text: str) -> str | None:
    """Lower-case UUID without braces, or None when `text` is not a UUID."""
    try:
        return str(uuid.UUID(text.strip().strip("{}")))
    except ValueError:
        return None


def find_application(conn: Connection, app_or_product_id: str) -> str | None:
    """The id of the application named by its UUID or its product id, else None.

    The one rule for every caller (Omaha `appid`, REST paths, the activity filter), see
    docs/server.md: surrounding space and braces are ignored, and case too, for a UUID
    and for a product id. Nebraska's `GetAppID` matches a product id exactly; product ids
    here are unique ignoring case, so every id Nebraska finds names the same application.
    """
    text = app_or_product_id.strip()
    a = t.application
    app_id = canonical_uuid(text)
    if app_id is not None:
        query = select(a.c.id).where(a.c.id == app_id)
    elif text:
        query = select(a.c.id).where(func.lower(a.c.product_id) == text.lower())
    else:
        return None
    found = conn.execute(query).scalar()
    return str(found) if found is not None else None


def resolve_app(conn: Connection, ref: str) -> str:
    """find_application, or NotFound naming what to give."""
    found = find_application(conn, ref)
    if found is None:
        raise NotFound(f"no application {ref!r}: give its id or product id")
    return found


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


def _application(conn: Connection, row: Row[Any], now: datetime) -> Application:
    r = row._mapping
    return Application(
        id=r["id"],
        product_id=r["product_id"],
        name=r["name"],
        description=r["description"] or "",
        created_ts=r["created_ts"],
        groups=groups_from_rows(conn, group_rows(conn, r["id"])),
        channels=channels_from_rows(conn, channel_rows(conn, r["id"])),
        instance_count=_instance_count(conn, r["id"], now),
    )


def list_apps(conn: Connection, limit: int, offset: int, now: datetime) -> ApplicationsPage:
    a = t.application
    total = int(conn.execute(select(func.count()).select_from(a)).scalar_one())
    rows = conn.execute(
        select(a).order_by(a.c.created_ts.desc(), a.c.id).limit(limit).offset(offset)
    ).all()
    return ApplicationsPage(total=total, applications=[_application(conn, r, now) for r in rows])


def get_app(conn: Connection, app_id: str, now: datetime) -> Application:
    row = conn.execute(select(t.application).where(t.application.c.id == app_id)).first()
    if row is None:
        raise NotFound(f"no application {app_id!r}")
    return _application(conn, row, now)


def _check_product_id(conn: Connection, product_id: str | None, app_id: str | None) -> None:
    if product_id is None:
        return
    if canonical_uuid(product_id) is not None:
        raise InvalidInput(
            f"product_id: {product_id!r} looks like a UUID; use a name like 'io.wellcar.os'"
        )
    # Unique ignoring case, as find_application looks product ids up ignoring case.
    a = t.application
    query = select(a.c.id).where(func.lower(a.c.product_id) == product_id.lower())
    if app_id is not None:
        query = query.where(a.c.id != app_id)
    if conn.execute(query).first() is not None:
        raise Conflict(f"product_id: another application already uses {product_id!r}")


def create_app(conn: Connection, body: NewApplication, now: datetime) -> str:
    if body.id is not None and body.id.strip():
        app_id = canonical_uuid(body.id)
        if app_id is None:
            raise InvalidInput(f"id: {body.id!r} is not a UUID")
        exists = conn.execute(select(t.application.c.id).where(t.application.c.id == app_id))
        if exists.first() is not None:
            raise Conflict(f"id: an application with id {app_id} already exists")
    else:
        app_id = str(uuid.uuid4())
    product_id = blank_to_none(body.product_id)
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


def clone_channels_and_groups(
    conn: Connection, source_ref: str, app_id: str, now: datetime
) -> None:
    """Nebraska's ``clone_from``: copy the source application's channels (without their
    packages, which are not cloned) and groups (on the copied channels, updates enabled)
    into ``app_id``. Runs in the caller's transaction, so a failure creates nothing."""
    try:
        source = resolve_app(conn, source_ref)
    except NotFound:
        raise InvalidInput(f"clone_from: no application {source_ref!r}") from None
    channel_ids: dict[str, str] = {}
    c = t.channel
    for row in conn.execute(select(c).where(c.c.application_id == source).order_by(c.c.name)):
        m = row._mapping
        channel_ids[m["id"]] = str(uuid.uuid4())
        conn.execute(
            insert(c).values(
                {**m, "id": channel_ids[m["id"]], "application_id": app_id, "package_id": None,
                 "created_ts": now}
            )
        )  # fmt: skip
    g = t.groups
    for row in conn.execute(select(g).where(g.c.application_id == source).order_by(g.c.name)):
        m = row._mapping
        conn.execute(
            insert(g).values(
                {**m, "id": str(uuid.uuid4()), "application_id": app_id,
                 "channel_id": channel_ids.get(m["channel_id"]) if m["channel_id"] else None,
                 "policy_updates_enabled": True, "rollout_in_progress": False,
                 "created_ts": now}
            )
        )  # fmt: skip


def update_app(conn: Connection, app_id: str, body: ApplicationChanges) -> None:
    values: dict[str, Any] = {}
    if body.name is not None:
        if not body.name.strip():
            raise InvalidInput("name: must not be blank")
        values["name"] = body.name.strip()
    if body.description is not None:
        values["description"] = body.description
    if "product_id" in body.sent:
        product_id = blank_to_none(body.product_id)
        _check_product_id(conn, product_id, app_id)
        values["product_id"] = product_id
    if values:
        conn.execute(update(t.application).where(t.application.c.id == app_id).values(values))


def delete_app(conn: Connection, app_id: str) -> None:
    conn.execute(delete(t.application).where(t.application.c.id == app_id))
