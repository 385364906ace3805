"""Seed a server database directly, for tests of the update path."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from wellcar.server.db import schema as t
from wellcar.server.fleet_codes import Arch, PackageType

T0 = datetime(2026, 1, 1)


@dataclass
class Seed:
    engine: Engine

    def app(self, app_id: str | None = None, name: str = "Wellcar") -> str:
        app_id = app_id or str(uuid.uuid4())
        with self.engine.begin() as c:
            c.execute(
                insert(t.application).values(id=app_id, name=name, description="", created_ts=T0)
            )
        return app_id

    def package(
        self,
        app_id: str,
        version: str,
        *,
        arch: Arch = Arch.AMD64,
        type_: PackageType = PackageType.FLATCAR,
        action: bool = True,
    ) -> str:
        pkg_id = str(uuid.uuid4())
        with self.engine.begin() as c:
            c.execute(
                insert(t.package).values(
                    id=pkg_id,
                    application_id=app_id,
                    type=int(type_),
                    version=version,
                    url=f"http://127.0.0.1:9/{version}/",
                    filename="wellcar_update.gz",
                    size=1000 + len(version),
                    hash="c2hhMQ==",
                    arch=int(arch),
                    created_ts=T0,
                )
            )
            if action:
                c.execute(
                    insert(t.flatcar_action).values(
                        id=str(uuid.uuid4()),
                        package_id=pkg_id,
                        event="postinstall",
                        chromeos_version="",
                        sha256=f"sha256-of-{version}",
                        needs_admin=False,
                        is_delta=False,
                        disable_payload_backoff=True,
                        metadata_signature_rsa="",
                        metadata_size="",
                        deadline="",
                        created_ts=T0,
                    )
                )
        return pkg_id

    def channel(
        self, app_id: str, name: str, package_id: str | None, arch: Arch = Arch.AMD64
    ) -> str:
        ch_id = str(uuid.uuid4())
        with self.engine.begin() as c:
            c.execute(
                insert(t.channel).values(
                    id=ch_id,
                    name=name,
                    color="",
                    application_id=app_id,
                    package_id=package_id,
                    arch=int(arch),
                    created_ts=T0,
                )
            )
        return ch_id

    def set_channel_package(self, channel_id: str, package_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(t.channel).where(t.channel.c.id == channel_id).values(package_id=package_id)
            )

    def floor(self, channel_id: str, package_id: str, reason: str = "migration") -> None:
        with self.engine.begin() as c:
            c.execute(
                insert(t.channel_package_floors).values(
                    channel_id=channel_id, package_id=package_id, floor_reason=reason, created_ts=T0
                )
            )

    def blacklist(self, package_id: str, channel_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                insert(t.package_channel_blacklist).values(
                    package_id=package_id, channel_id=channel_id
                )
            )

    def group(self, app_id: str, channel_id: str | None, track: str, **policy: object) -> str:
        group_id = str(uuid.uuid4())
        values: dict[str, object] = {
            "policy_updates_enabled": True,
            "policy_safe_mode": False,
            "policy_office_hours": False,
            "policy_timezone": None,
            "policy_period_interval": "15 minutes",
            "policy_max_updates_per_period": 999999,
            "policy_update_timeout": "60 minutes",
            "policy_office_hours_spec": "mon-fri 09:00-17:00",
        }
        values.update({f"policy_{k}": v for k, v in policy.items()})
        with self.engine.begin() as c:
            c.execute(
                insert(t.groups).values(
                    id=group_id,
                    name=f"{track}-{group_id[:8]}",
                    description="",
                    application_id=app_id,
                    channel_id=channel_id,
                    track=track,
                    rollout_in_progress=False,
                    created_ts=T0,
                    **values,
                )
            )
        return group_id
