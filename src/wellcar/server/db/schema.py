"""The server's tables, modelled on Nebraska's schema.

Column names follow Nebraska's (and so its JSON field names), which keeps the REST
API a thin layer. Timestamps are naive UTC: SQLite has no time zones and all time
arithmetic happens in Python, so the same queries run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID = String(36)  # UUIDs as text: portable between SQLite and PostgreSQL

application = Table(
    "application",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("product_id", String(200), nullable=True, unique=True),
    Column("created_ts", DateTime, nullable=False),
)

package = Table(
    "package",
    metadata,
    Column("id", ID, primary_key=True),
    Column("application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), nullable=False),
    Column("type", Integer, nullable=False),
    Column("version", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("filename", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("hash", String(200), nullable=True),
    Column("arch", Integer, nullable=False, default=0),
    Column("created_ts", DateTime, nullable=False),
    UniqueConstraint("application_id", "version", "arch", name="uq_package_app_version_arch"),
)

# A package's extra files (Nebraska's package_file): more payloads that ride along in the
# same Omaha manifest, such as Flatcar's OEM and sysext images.
package_file = Table(
    "package_file",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("package_id", ID, ForeignKey("package.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("hash", String(200), nullable=True),  # base64 SHA-1
    Column("hash256", String(200), nullable=True),  # SHA-256, as the uploader gave it
    Column("created_ts", DateTime, nullable=False),
    sqlite_autoincrement=True,  # ids never reused, as PostgreSQL's serial (Nebraska)
)
Index("ix_package_file_package", package_file.c.package_id, package_file.c.id)

flatcar_action = Table(
    "flatcar_action",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "package_id", ID, ForeignKey("package.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    Column("event", String(50), nullable=False, default="postinstall"),
    Column("chromeos_version", String(100), nullable=False, default=""),
    Column("sha256", String(200), nullable=False),
    Column("needs_admin", Boolean, nullable=False, default=False),
    Column("is_delta", Boolean, nullable=False, default=False),
    Column("disable_payload_backoff", Boolean, nullable=False, default=True),
    Column("metadata_signature_rsa", Text, nullable=False, default=""),
    Column("metadata_size", String(50), nullable=False, default=""),
    Column("deadline", String(100), nullable=False, default=""),
    Column("created_ts", DateTime, nullable=False),
)

channel = Table(
    "channel",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("color", String(50), nullable=False, default=""),
    Column("application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), nullable=False),
    Column("package_id", ID, ForeignKey("package.id", ondelete="SET NULL"), nullable=True),
    Column("arch", Integer, nullable=False, default=1),
    Column("created_ts", DateTime, nullable=False),
    UniqueConstraint("application_id", "name", "arch", name="uq_channel_app_name_arch"),
)

package_channel_blacklist = Table(
    "package_channel_blacklist",
    metadata,
    Column("package_id", ID, ForeignKey("package.id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", ID, ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True),
)

channel_package_floors = Table(
    "channel_package_floors",
    metadata,
    Column("channel_id", ID, ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True),
    Column("package_id", ID, ForeignKey("package.id", ondelete="CASCADE"), primary_key=True),
    Column("floor_reason", Text, nullable=True),
    Column("created_ts", DateTime, nullable=False),
)

groups = Table(
    "groups",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", ID, ForeignKey("channel.id", ondelete="SET NULL"), nullable=True),
    Column("track", String(100), nullable=False),
    Column("policy_updates_enabled", Boolean, nullable=False, default=True),
    Column("policy_safe_mode", Boolean, nullable=False, default=True),
    Column("policy_office_hours", Boolean, nullable=False, default=False),
    Column("policy_timezone", String(100), nullable=True),
    Column("policy_period_interval", String(50), nullable=False, default="15 minutes"),
    Column("policy_max_updates_per_period", Integer, nullable=False, default=2),
    Column("policy_update_timeout", String(50), nullable=False, default="60 minutes"),
    # Wellcar addition: office hours as "mon-fri 09:00-17:00" (Nebraska hard-codes this value).
    Column("policy_office_hours_spec", String(200), nullable=False, default="mon-fri 09:00-17:00"),
    Column("rollout_in_progress", Boolean, nullable=False, default=False),
    Column("created_ts", DateTime, nullable=False),
    UniqueConstraint("application_id", "name", name="uq_groups_app_name"),
)
Index("ix_groups_app_track", groups.c.application_id, groups.c.track)

instance = Table(
    "instance",
    metadata,
    Column("id", String(100), primary_key=True),  # the machine id
    Column("ip", String(64), nullable=False, default=""),
    Column("alias", String(200), nullable=False, default=""),
    Column("oem", String(100), nullable=False, default=""),
    Column("oem_version", String(100), nullable=False, default=""),
    Column("aleph_version", String(100), nullable=False, default=""),
    Column("created_ts", DateTime, nullable=False),
)

instance_application = Table(
    "instance_application",
    metadata,
    Column(
        "instance_id", String(100), ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("group_id", ID, ForeignKey("groups.id", ondelete="SET NULL"), nullable=True),
    Column("version", String(100), nullable=False),
    Column("status", Integer, nullable=True),
    Column("last_check_for_updates", DateTime, nullable=False),
    Column("last_update_granted_ts", DateTime, nullable=True),
    Column("last_update_version", String(100), nullable=True),
    Column("update_in_progress", Boolean, nullable=False, default=False),
    Column("created_ts", DateTime, nullable=False),
)
# Indexes that keep every rollout count a range scan (see rollout_counts.py).
Index(
    "ix_instance_application_group_check",
    instance_application.c.group_id,
    instance_application.c.last_check_for_updates,
)
Index(
    "ix_instance_application_group_granted",
    instance_application.c.group_id,
    instance_application.c.last_update_granted_ts,
)
Index(
    "ix_instance_application_group_progress",
    instance_application.c.group_id,
    instance_application.c.update_in_progress,
)
Index(
    "ix_instance_application_group_version",
    instance_application.c.group_id,
    instance_application.c.version,
)
Index(
    "ix_instance_application_group_last_version",
    instance_application.c.group_id,
    instance_application.c.last_update_version,
)

instance_status_history = Table(
    "instance_status_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", Integer, nullable=False),
    Column("version", String(100), nullable=True),
    Column(
        "instance_id", String(100), ForeignKey("instance.id", ondelete="CASCADE"), nullable=False
    ),
    Column("application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", ID, ForeignKey("groups.id", ondelete="SET NULL"), nullable=True),
    Column("created_ts", DateTime, nullable=False),
)
Index(
    "ix_status_history_instance",
    instance_status_history.c.instance_id,
    instance_status_history.c.application_id,
    instance_status_history.c.created_ts,
)
Index(
    "ix_status_history_group",
    instance_status_history.c.group_id,
    instance_status_history.c.created_ts,
)

event = Table(
    "event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", Integer, nullable=False),
    Column("result", Integer, nullable=False),
    Column(
        "instance_id", String(100), ForeignKey("instance.id", ondelete="CASCADE"), nullable=False
    ),
    Column("application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", ID, ForeignKey("groups.id", ondelete="SET NULL"), nullable=True),
    Column("previous_version", String(100), nullable=True),
    Column("error_code", String(50), nullable=True),
    Column("created_ts", DateTime, nullable=False),
)
Index("ix_event_instance", event.c.instance_id, event.c.created_ts)

activity = Table(
    "activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("class", Integer, nullable=False),
    Column("severity", Integer, nullable=False),
    Column("version", String(100), nullable=False, default=""),
    Column("application_id", ID, ForeignKey("application.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", ID, ForeignKey("groups.id", ondelete="SET NULL"), nullable=True),
    Column("channel_id", ID, ForeignKey("channel.id", ondelete="SET NULL"), nullable=True),
    Column("instance_id", String(100), nullable=True),
    Column("created_ts", DateTime, nullable=False),
)
Index("ix_activity_app_ts", activity.c.application_id, activity.c.created_ts)

# FleetLock (Zincati's reboot coordination, docs/fleetlock.md): one row per reboot group,
# one per node holding a reboot slot. A group row is what PostgreSQL locks to serialise
# the slot decisions of its group.
fleetlock_group = Table(
    "fleetlock_group",
    metadata,
    Column("name", String(255), primary_key=True),
    # NULL: the server's default (`wellcar serve --fleetlock-default-slots`).
    Column("slots", Integer, nullable=True),
    Column("updated_at", DateTime, nullable=False),
)

fleetlock_holder = Table(
    "fleetlock_holder",
    metadata,
    Column(
        "group_name",
        String(255),
        ForeignKey("fleetlock_group.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("node_id", String(255), primary_key=True),
    Column("acquired_at", DateTime, nullable=False),
)
