"""Seed and manage the databases of the fleet simulator (bench/fleet_sim.py).

The benchmark needs exactly what an operator would set up for a Flatcar fleet: the
Flatcar application, a stable channel with a package, and a "stable" group following
it. Releases are published the way the admin API does it (new package + postinstall
action, channel moved to it); the server reads the channel on every check-in, so a
release is picked up without a restart.

Kept independent of tests/ on purpose: the benchmark must run from a checkout without
the test tree on the path.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from wellcar.omaha import FLATCAR_APP_ID
from wellcar.server.data.applications import canonical_uuid
from wellcar.server.db import schema as t
from wellcar.server.db.engine import create_db_engine, migrate, normalise_url
from wellcar.server.fleet_codes import Arch, InstanceStatus, PackageType

FLATCAR_APP_UUID = canonical_uuid(FLATCAR_APP_ID)
assert FLATCAR_APP_UUID is not None
TRACK = "stable"


def release_version(round_no: int) -> str:
    """The version the fleet runs after `round_no` update rounds (round 0: initial install)."""
    return f"4459.2.{round_no}"


def _now() -> datetime:
    # The schema stores naive UTC timestamps (the server's clock is naive UTC too).
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class FleetDb:
    """Ids of the seeded catalog rows; `url` is a SQLAlchemy URL (sqlite:/// or postgresql://)."""

    url: str
    app_id: str
    channel_id: str
    group_id: str

    def engine(self) -> Engine:
        return create_db_engine(self.url, pool_size=1)


def seed_catalog(url: str) -> FleetDb:
    """Migrate a fresh database and create app, package (round 0), channel and an unlimited group.

    The group policy is "unlimited" (999999 updates per period, safe mode off) so that every
    simulated node walks the whole update flow; the server still does all its bookkeeping
    (status history, events, activity, rollout flags).
    """
    engine = create_db_engine(url, pool_size=1)
    try:
        migrate(engine)
        app_id = FLATCAR_APP_UUID
        assert app_id is not None
        channel_id = str(uuid.uuid4())
        group_id = str(uuid.uuid4())
        now = _now()
        with engine.begin() as c:
            c.execute(
                insert(t.application).values(
                    id=app_id, name="Flatcar", description="", created_ts=now
                )
            )
            pkg_id = _insert_package(c, app_id, release_version(0), now)
            c.execute(
                insert(t.channel).values(
                    id=channel_id,
                    name=TRACK,
                    color="",
                    application_id=app_id,
                    package_id=pkg_id,
                    arch=int(Arch.AMD64),
                    created_ts=now,
                )
            )
            c.execute(
                insert(t.groups).values(
                    id=group_id,
                    name="stable-fleet",
                    description="",
                    application_id=app_id,
                    channel_id=channel_id,
                    track=TRACK,
                    rollout_in_progress=False,
                    created_ts=now,
                    policy_updates_enabled=True,
                    policy_safe_mode=False,
                    policy_office_hours=False,
                    policy_timezone=None,
                    policy_period_interval="15 minutes",
                    policy_max_updates_per_period=999999,
                    policy_update_timeout="60 minutes",
                    policy_office_hours_spec="mon-fri 09:00-17:00",
                )
            )
    finally:
        engine.dispose()
    return FleetDb(url=url, app_id=app_id, channel_id=channel_id, group_id=group_id)


def _insert_package(conn: Connection, app_id: str, version: str, now: datetime) -> str:
    pkg_id = str(uuid.uuid4())
    conn.execute(
        insert(t.package).values(
            id=pkg_id,
            application_id=app_id,
            type=int(PackageType.FLATCAR),
            version=version,
            url=f"https://update.release.flatcar-linux.net/amd64-usr/{version}/",
            filename="flatcar_production_update.gz",
            size=480_000_000,
            hash="x5N3TyB8Vr0x3QvmcnPNX6Dz0q4=",
            arch=int(Arch.AMD64),
            created_ts=now,
        )
    )
    conn.execute(
        insert(t.flatcar_action).values(
            id=str(uuid.uuid4()),
            package_id=pkg_id,
            event="postinstall",
            chromeos_version="",
            sha256="cyGJrMF8ZuKzNxt6j5IbBn2ZnmjdDRVpSHuQxGzEzQ8=",
            needs_admin=False,
            is_delta=False,
            disable_payload_backoff=True,
            metadata_signature_rsa="",
            metadata_size="",
            deadline="",
            created_ts=now,
        )
    )
    return pkg_id


def publish_release(db: FleetDb, engine: Engine, version: str) -> None:
    """Add the package for `version` and point the stable channel at it (an admin's release)."""
    with engine.begin() as c:
        pkg_id = _insert_package(c, db.app_id, version, _now())
        c.execute(
            update(t.channel).where(t.channel.c.id == db.channel_id).values(package_id=pkg_id)
        )


@dataclass(frozen=True, slots=True)
class FleetCensus:
    """What the server recorded, read back after a run to check its bookkeeping."""

    instances: int
    by_status: dict[str, int]
    events: int
    history: int
    activities: int


def census(engine: Engine) -> FleetCensus:
    ia = t.instance_application
    with engine.connect() as c:
        instances = c.execute(select(func.count()).select_from(t.instance)).scalar_one()
        rows = c.execute(select(ia.c.status, func.count()).group_by(ia.c.status)).all()
        events = c.execute(select(func.count()).select_from(t.event)).scalar_one()
        history = c.execute(
            select(func.count()).select_from(t.instance_status_history)
        ).scalar_one()
        activities = c.execute(select(func.count()).select_from(t.activity)).scalar_one()
    by_status = {
        (InstanceStatus(s).name.lower() if s is not None else "none"): int(n) for s, n in rows
    }
    return FleetCensus(int(instances), by_status, int(events), int(history), int(activities))


# --- cloning: every timed run starts from the same registered fleet -----------------


def sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def clone_sqlite(src_url: str, dest_dir: Path) -> str:
    """Copy the registered fleet's SQLite file into `dest_dir` (the server's data dir)."""
    src = sqlite_file(src_url)
    # Fold the WAL into the main file first, so one file copy is a complete database.
    with sqlite3.connect(src) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / "wellcar.db"
    shutil.copyfile(src, dest)
    return f"sqlite:///{dest.resolve()}"


def clone_postgres(admin_url: str, template_db: str, new_db: str) -> str:
    """`CREATE DATABASE new TEMPLATE template`: a file-level copy, much faster than re-seeding."""
    engine = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(text(f'CREATE DATABASE "{new_db}" TEMPLATE "{template_db}"'))
    finally:
        engine.dispose()
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{new_db}"


def drop_postgres(admin_url: str, name: str) -> None:
    engine = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        engine.dispose()


def register_direct(
    db: FleetDb, engine: Engine, machine_ids: list[str], *, ip: str, chunk: int = 5000
) -> None:
    """Write the rows a first-ever check-in creates, for nodes not registered over HTTP.

    The same columns and values `register_instance` writes for a new node of this
    simulator (oem "qemu" 0.1.2, aleph = version = release 0, no status yet); used to keep
    the set-up of large fleets within the time budget (see docs/benchmarks.md).
    """
    now = _now()
    version = release_version(0)
    for start in range(0, len(machine_ids), chunk):
        ids = machine_ids[start : start + chunk]
        with engine.begin() as c:
            c.execute(
                insert(t.instance),
                [
                    {
                        "id": m,
                        "ip": ip,
                        "alias": "",
                        "oem": "qemu",
                        "oem_version": "0.1.2",
                        "aleph_version": version,
                        "created_ts": now,
                    }
                    for m in ids
                ],
            )
            c.execute(
                insert(t.instance_application),
                [
                    {
                        "instance_id": m,
                        "application_id": db.app_id,
                        "group_id": db.group_id,
                        "version": version,
                        "last_check_for_updates": now,
                        "update_in_progress": False,
                        "created_ts": now,
                    }
                    for m in ids
                ],
            )
