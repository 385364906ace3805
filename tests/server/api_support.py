"""Helpers for the REST API tests: build a fleet through the API, seed instances directly."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import InstanceStatus

FLATCAR_ID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"
FLATCAR = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"


def sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


def error_of(resp: Any, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    message: str = body["error"]
    return message


@dataclass
class Fleet:
    """One application with a stable channel (serving 2.0.0) and a group on it."""

    client: TestClient
    app: str
    old_pkg: str
    pkg: str
    channel: str
    group: str

    @classmethod
    def build(cls, client: TestClient, app_id: str = FLATCAR_ID) -> Fleet:
        app = ok(client.post("/api/apps", json={"id": app_id, "name": "Flatcar"}))["id"]
        old = create_package(client, app, "1.0.0")
        pkg = create_package(client, app, "2.0.0")
        ch = ok(
            client.post(f"/api/apps/{app}/channels", json={"name": "stable", "package_id": pkg})
        )["id"]
        grp = ok(
            client.post(
                f"/api/apps/{app}/groups",
                json={"name": "Stable", "channel_id": ch, "track": "stable"},
            )
        )["id"]
        return cls(client, app, old, pkg, ch, grp)

    @property
    def engine(self) -> Engine:
        engine: Engine = self.client.app.state.engine  # type: ignore[attr-defined]
        return engine


def create_package(client: TestClient, app: str, version: str, **extra: Any) -> str:
    body: dict[str, Any] = {
        "version": version,
        "url": f"https://example.test/{version}/",
        "filename": "wellcar_update.gz",
        "size": "1000",
        "hash": "c2hhMQ==",
        "flatcar_action": {"sha256": sha256_b64(version)},
        **extra,
    }
    package_id: str = ok(client.post(f"/api/apps/{app}/packages", json=body))["id"]
    return package_id


def seed_instance(
    engine: Engine,
    fleet: Fleet,
    machine_id: str,
    *,
    version: str = "1.0.0",
    status: InstanceStatus | None = None,
    seen: datetime,
    created: datetime | None = None,
    alias: str = "",
    ip: str = "10.0.0.1",
    group: str | None = None,
    granted: datetime | None = None,
    in_progress: bool = False,
) -> None:
    created = created or seen - timedelta(days=1)
    with engine.begin() as c:
        c.execute(
            insert(t.instance).values(
                id=machine_id, ip=ip, alias=alias, oem="qemu", oem_version="0.1",
                aleph_version="0.9.0", created_ts=created,
            )
        )  # fmt: skip
        c.execute(
            insert(t.instance_application).values(
                instance_id=machine_id,
                application_id=fleet.app,
                group_id=group or fleet.group,
                version=version,
                status=int(status) if status is not None else None,
                last_check_for_updates=seen,
                last_update_granted_ts=granted,
                last_update_version="2.0.0" if granted else None,
                update_in_progress=in_progress,
                created_ts=created,
            )
        )


def seed_history(
    engine: Engine,
    fleet: Fleet,
    machine_id: str,
    status: InstanceStatus,
    version: str,
    at: datetime,
    *,
    previous_version: str | None = None,
    error_code: str | None = None,
) -> None:
    """A status change, with the event that caused it (same time, as the server records)."""
    with engine.begin() as c:
        c.execute(
            insert(t.instance_status_history).values(
                status=int(status), version=version, instance_id=machine_id,
                application_id=fleet.app, group_id=fleet.group, created_ts=at,
            )
        )  # fmt: skip
        event: tuple[int, int] | None = None
        if status is InstanceStatus.COMPLETE:
            event = (3, 2)
        elif status is InstanceStatus.ERROR:
            event = (3, 0)
        if event is not None:
            c.execute(
                insert(t.event).values(
                    type=event[0], result=event[1], instance_id=machine_id,
                    application_id=fleet.app, group_id=fleet.group,
                    previous_version=previous_version, error_code=error_code, created_ts=at,
                )
            )  # fmt: skip
