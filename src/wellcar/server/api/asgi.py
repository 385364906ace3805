"""Factory for uvicorn workers: settings travel in environment variables."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from wellcar.server.api.app import create_app
from wellcar.server.console_settings import ConsoleSettings
from wellcar.server.logging_setup import configure_server_logging
from wellcar.server.settings import DEFAULT_FLEETLOCK_SLOTS, ServerSettings
from wellcar.server.syncer import SyncSettings

ENV_DATA_DIR = "WELLCAR_SERVE_DATA_DIR"
ENV_DATABASE = "WELLCAR_SERVE_DATABASE"
ENV_SUFFIX = "WELLCAR_SERVE_OMAHA_SUFFIX"
ENV_POOL = "WELLCAR_SERVE_DB_POOL"
ENV_FLEETLOCK_SLOTS = "WELLCAR_SERVE_FLEETLOCK_DEFAULT_SLOTS"
ENV_LOG_LEVEL = "WELLCAR_SERVE_LOG_LEVEL"
ENV_LOG_FORMAT = "WELLCAR_SERVE_LOG_FORMAT"
ENV_CONSOLE = "WELLCAR_SERVE_CONSOLE"
ENV_PRUNE_DAYS = "WELLCAR_SERVE_PRUNE_INSTANCES_AFTER_DAYS"
ENV_SYNC = "WELLCAR_SERVE_SYNC"  # JSON: SyncSettings' fields (interval in seconds)


def settings_to_env(settings: ServerSettings) -> dict[str, str]:
    env = {
        ENV_DATA_DIR: str(settings.data_dir),
        ENV_POOL: str(settings.db_pool_size),
        ENV_FLEETLOCK_SLOTS: str(settings.fleetlock_default_slots),
        ENV_LOG_LEVEL: settings.log_level,
        ENV_LOG_FORMAT: settings.log_format,
        ENV_CONSOLE: settings.console.to_json(),
    }
    if settings.database_url:
        env[ENV_DATABASE] = settings.database_url
    if settings.omaha_path_suffix:
        env[ENV_SUFFIX] = settings.omaha_path_suffix
    if settings.prune_instances_after_days is not None:
        env[ENV_PRUNE_DAYS] = str(settings.prune_instances_after_days)
    if settings.sync is not None:
        sync = settings.sync
        env[ENV_SYNC] = json.dumps({
            "upstream_url": sync.upstream_url,
            "interval_s": sync.interval.total_seconds(),
            "host_packages_dir": str(sync.host_packages_dir) if sync.host_packages_dir else None,
            "public_url": sync.public_url,
            "packages_url": sync.packages_url,
        })  # fmt: skip
    return env


def _sync_from_env() -> SyncSettings | None:
    if ENV_SYNC not in os.environ:
        return None
    raw = json.loads(os.environ[ENV_SYNC])
    host = raw.get("host_packages_dir")
    return SyncSettings(raw["upstream_url"], timedelta(seconds=raw["interval_s"]),
                        Path(host) if host else None, raw.get("public_url"),
                        raw.get("packages_url"))  # fmt: skip


def app_from_env() -> FastAPI:
    settings = ServerSettings(
        data_dir=Path(os.environ[ENV_DATA_DIR]),
        database_url=os.environ.get(ENV_DATABASE) or None,
        omaha_path_suffix=os.environ.get(ENV_SUFFIX) or None,
        db_pool_size=int(os.environ.get(ENV_POOL, "10")),
        fleetlock_default_slots=int(
            os.environ.get(ENV_FLEETLOCK_SLOTS, str(DEFAULT_FLEETLOCK_SLOTS))
        ),
        log_level=os.environ.get(ENV_LOG_LEVEL, "info"),
        log_format=os.environ.get(ENV_LOG_FORMAT, "logfmt"),
        console=ConsoleSettings.from_json(os.environ[ENV_CONSOLE])
        if ENV_CONSOLE in os.environ
        else ConsoleSettings(),
        prune_instances_after_days=int(os.environ[ENV_PRUNE_DAYS])
        if ENV_PRUNE_DAYS in os.environ
        else None,
        sync=_sync_from_env(),
    )
    # A worker process of `--workers N` starts with Python's default logging (bare
    # messages, warnings only): give it the same lines as the parent.
    configure_server_logging(settings.log_level, settings.log_format)
    return create_app(settings)
