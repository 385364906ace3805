"""`wellcar serve`: run the update server."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from wellcar.cli.log_options import LogFormatChoice
from wellcar.server.auth import Tokens
from wellcar.server.console_settings import ConsoleAuth, ConsoleSettings, OidcSettings, role_list
from wellcar.server.db.engine import create_db_engine, migrate
from wellcar.server.errors import ServerError
from wellcar.server.fleetlock import MAX_FLEETLOCK_SLOTS
from wellcar.server.logging_setup import configure_server_logging
from wellcar.server.settings import DEFAULT_FLEETLOCK_SLOTS, ServerSettings
from wellcar.server.syncer import DEFAULT_SYNC_INTERVAL, SyncSettings

console = Console(stderr=True)


def announce_tokens(data_dir: Path) -> None:
    tokens = Tokens.load(data_dir)
    for label, src in (("admin", tokens.admin), ("read-only", tokens.reader)):
        verb = "generated into" if src.created else "from"
        console.print(f"[bold]{label} token[/bold] {verb} {src.origin}")


def prepare(settings: ServerSettings) -> None:
    """Migrate once before workers start, so start-up errors show as one clear line."""
    engine = create_db_engine(settings.effective_database_url, pool_size=1)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def serve(
    data_dir: Annotated[Path, typer.Option(help="Where the SQLite file and tokens live")] = Path(
        "var/server"
    ),
    database: Annotated[
        str | None, typer.Option(help="postgresql://user:pw@host/db to scale out (default SQLite)")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes")] = 1,
    api_endpoint_suffix: Annotated[
        str | None, typer.Option(help="Serve Omaha only at /v1/update/<suffix> (a secret)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    log_format: Annotated[
        LogFormatChoice, typer.Option(help="Log lines: logfmt, or JSON one object a line")
    ] = LogFormatChoice.LOGFMT,
    fleetlock_default_slots: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_FLEETLOCK_SLOTS,
            help="FleetLock: reboot slots of a group without configured slots (0: none)",
        ),
    ] = DEFAULT_FLEETLOCK_SLOTS,
    prune_instances_after: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="DAYS",
            help="Forget instances (with their history) that have not checked in for DAYS "
            "days, checked hourly (default: keep every instance, as Nebraska does)",
        ),
    ] = None,
    sync_from: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Follow an upstream Omaha server's alpha/beta/stable/edge/lts-* channels "
            "(its /v1/update/ URL), as Nebraska's syncer",
        ),
    ] = None,
    sync_interval: Annotated[
        int, typer.Option(min=60, metavar="SECONDS", help="Seconds between sync rounds")
    ] = int(DEFAULT_SYNC_INTERVAL.total_seconds()),
    sync_packages_url: Annotated[
        str | None,
        typer.Option(
            metavar="TEMPLATE",
            help="Where the upstream keeps each version's payload, {{VERSION}} and {{ARCH}} "
            "replaced (default: derived from the upstream's answer)",
        ),
    ] = None,
    host_packages: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="With --sync-from: download the payloads (checked) into DIR and serve them "
            "at /flatcar/",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="This server's URL as nodes reach it (hosted packages)"),
    ] = None,
    console_auth: Annotated[
        ConsoleAuth,
        typer.Option(
            help="Console sign-in: 'token' (the admin or read-only token), 'oidc' "
            "(OpenID Connect, roles from a claim), 'none' (a lab only: everybody is admin)"
        ),
    ] = ConsoleAuth.TOKEN,
    oidc_issuer_url: Annotated[str, typer.Option(help="OIDC: the provider's issuer URL")] = "",
    oidc_client_id: Annotated[str, typer.Option(help="OIDC: this console's client id")] = "",
    oidc_client_secret: Annotated[
        str,
        typer.Option(
            envvar="WELLCAR_OIDC_CLIENT_SECRET",
            help="OIDC: client secret, for a confidential client (default: public, PKCE only)",
        ),
    ] = "",
    oidc_admin_roles: Annotated[
        str, typer.Option(help="OIDC: comma-separated roles that make an admin")
    ] = "",
    oidc_viewer_roles: Annotated[
        str, typer.Option(help="OIDC: comma-separated roles that make a viewer (read-only)")
    ] = "",
    oidc_roles_path: Annotated[
        str, typer.Option(help="OIDC: dot-separated path of the roles claim in the ID token")
    ] = "roles",
    oidc_scopes: Annotated[str, typer.Option(help="OIDC: comma-separated scopes")] = (
        "openid,profile"
    ),
) -> None:
    """Run the update server: Omaha at /v1/update/, FleetLock at /v1/pre-reboot and
    /v1/steady-state, REST at /api, /metrics, /health."""
    from wellcar.server.api.asgi import settings_to_env

    settings = ServerSettings(
        data_dir=data_dir,
        database_url=database,
        omaha_path_suffix=api_endpoint_suffix,
        fleetlock_default_slots=fleetlock_default_slots,
        log_level=log_level,
        log_format=log_format.value,
        prune_instances_after_days=prune_instances_after,
        sync=SyncSettings(
            sync_from,
            timedelta(seconds=sync_interval),
            host_packages,
            public_url,
            sync_packages_url,
        )
        if sync_from
        else None,
        console=ConsoleSettings(
            auth=console_auth,
            oidc=OidcSettings(
                issuer_url=oidc_issuer_url,
                client_id=oidc_client_id,
                client_secret=oidc_client_secret,
                admin_roles=role_list(oidc_admin_roles),
                viewer_roles=role_list(oidc_viewer_roles),
                roles_path=oidc_roles_path,
                scopes=role_list(oidc_scopes),
            )
            if console_auth is ConsoleAuth.OIDC
            else None,
        ),
    )
    configure_server_logging(log_level, log_format.value)
    try:
        settings.console.check()
        if settings.sync is not None:
            settings.sync.check()
        elif host_packages is not None:
            raise ServerError("--host-packages needs --sync-from (it hosts the synced payloads)")
        prepare(settings)
    except ServerError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    announce_tokens(data_dir)
    os.environ.update(settings_to_env(settings))
    console.print(f"serving on http://{host}:{port}/ (Omaha: {host}:{port}/v1/update/)")
    if console_auth is ConsoleAuth.LAB:
        console.print("[yellow]console without sign-in (lab mode): anyone who reaches it is admin")
    uvicorn.run(
        "wellcar.server.api.asgi:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
