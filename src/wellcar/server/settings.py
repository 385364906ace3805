"""How one `wellcar serve` process is configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wellcar.server.console_settings import ConsoleSettings
from wellcar.server.db.engine import sqlite_url
from wellcar.server.syncer import SyncSettings

DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_FLEETLOCK_SLOTS = 1  # reboot slots of a FleetLock group nobody configured


@dataclass(frozen=True, slots=True)
class ServerSettings:
    data_dir: Path
    database_url: str | None = None  # None: SQLite file in data_dir
    omaha_path_suffix: str | None = None  # Nebraska's -api-endpoint-suffix (a secret)
    max_body_bytes: int = DEFAULT_MAX_BODY
    db_pool_size: int = 10
    demo: bool = False
    fleetlock_default_slots: int = DEFAULT_FLEETLOCK_SLOTS
    log_level: str = "info"
    log_format: str = "logfmt"  # wellcar.logline.LOG_FORMATS
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    # Instance retention (server/instance_pruning.py): days without a check-in after which
    # an instance is forgotten; None keeps every instance, as Nebraska does.
    prune_instances_after_days: int | None = None
    sync: SyncSettings | None = None  # follow an upstream's channels (server/syncer.py)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)
