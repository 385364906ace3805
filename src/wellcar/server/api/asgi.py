"""Factory for uvicorn workers: settings travel in environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from wellcar.server.api.app import create_app
from wellcar.server.console_settings import ConsoleSettings
from wellcar.server.logging_setup import configure_server_logging
from wellcar.server.settings import DEFAULT_FLEETLOCK_SLOTS, ServerSettings

ENV_DATA_DIR = "WELLCAR_SERVE_DATA_DIR"
ENV_DATABASE = "WELLCAR_SERVE_DATABASE"
ENV_SUFFIX = "WELLCAR_SERVE_OMAHA_SUFFIX"
ENV_POOL = "WELLCAR_SERVE_DB_POOL"
ENV_FLEETLOCK_SLOTS = "WELLCAR_SERVE_FLEETLOCK_DEFAULT_SLOTS"
ENV_LOG_LEVEL = "WELLCAR_SERVE_LOG_LEVEL"
ENV_LOG_FORMAT = "WELLCAR_SERVE_LOG_FORMAT"
ENV_CONSOLE = "WELLCAR_SERVE_CONSOLE"
ENV_PRUNE_DAYS = "WELLCAR_SERVE_PRUNE_INSTANCES_AFTER_DAYS"


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
    return env


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
    )
    # A worker process of `--workers N` starts with Python's default logging (bare
    # messages, warnings only): give it the same lines as the parent.
    configure_server_logging(settings.log_level, settings.log_format)
    return create_app(settings)
