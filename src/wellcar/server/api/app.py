"""The ASGI application of `wellcar serve`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

import wellcar
from wellcar.logline import log_fields
from wellcar.omaha import OmahaParseError, parse_request, render_response
from wellcar.server.api import api_router
from wellcar.server.api import fleetlock as fleetlock_api
from wellcar.server.api.console.mount import mount_console
from wellcar.server.auth import Tokens
from wellcar.server.clock import Clock, utc_now
from wellcar.server.console_settings import ConsoleAuth
from wellcar.server.db.engine import READ_ONLY, create_db_engine, migrate
from wellcar.server.fleetlock import FleetLock
from wellcar.server.instance_pruning import PRUNE_EVERY, prune_and_log
from wellcar.server.metrics import ServerMetrics
from wellcar.server.omaha_endpoint import OmahaContext, OmahaEndpoint
from wellcar.server.periodic import run_periodically
from wellcar.server.settings import ServerSettings
from wellcar.server.syncer import HOSTED_PATH, Syncer

log = logging.getLogger("wellcar.server")
XML = "text/xml; charset=utf-8"


def client_ip(request: Request) -> str:
    # Behind a load balancer the client is the first X-Forwarded-For hop (as Nebraska).
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else ""


async def read_body_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` bytes (never buffered beyond it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _xml_error(status: int, reason: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<error reason="{reason}"/>\n'
    return Response(body, status_code=status, media_type=XML)


def create_app(
    settings: ServerSettings, *, clock: Clock = utc_now, engine: Engine | None = None
) -> FastAPI:
    engine = engine or create_db_engine(
        settings.effective_database_url, pool_size=settings.db_pool_size
    )
    tokens = Tokens.load(settings.data_dir)
    metrics = ServerMetrics(engine, clock, fleetlock_default_slots=settings.fleetlock_default_slots)
    fleetlock = FleetLock(engine, clock, settings.fleetlock_default_slots)
    omaha = OmahaEndpoint(engine, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(migrate, engine)
        tasks = []
        if settings.prune_instances_after_days is not None:
            retention = timedelta(days=settings.prune_instances_after_days)
            prune = partial(prune_and_log, engine, clock, retention)
            tasks.append(asyncio.create_task(run_periodically(prune, PRUNE_EVERY, "pruning")))
        if settings.sync is not None:
            syncer = Syncer(engine, clock, settings.sync)
            every = settings.sync.interval
            tasks.append(asyncio.create_task(run_periodically(syncer.sync_once, every, "sync")))
        yield
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        engine.dispose()

    app = FastAPI(
        title="Wellcar update server",
        version="0.1.0",
        description="Omaha update server with Nebraska-compatible REST API",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.clock = clock
    app.state.tokens = tokens
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.fleetlock = fleetlock

    async def omaha_update(request: Request) -> Response:
        started = time.perf_counter()
        body = await read_body_capped(request, settings.max_body_bytes)
        if body is None:
            metrics.omaha_rejected("body-too-large")
            log.warning(
                "omaha request refused: body too large",
                extra=log_fields(client_ip=client_ip(request), limit=settings.max_body_bytes),
            )
            return _xml_error(413, "body-too-large")
        try:
            req = parse_request(body, request.headers.get("content-type"))
        except OmahaParseError as exc:
            metrics.omaha_rejected(exc.reason)
            log.warning(
                "omaha request refused",
                extra=log_fields(client_ip=client_ip(request), reason=exc.reason, error=exc),
            )
            return _xml_error(exc.http_status, exc.reason)
        resp = await run_in_threadpool(omaha.respond, req, OmahaContext(client_ip(request)))
        out = Response(render_response(resp), media_type=XML)
        metrics.observe_omaha(time.perf_counter() - started)
        return out

    # Plain Starlette routes: the Omaha endpoint needs none of FastAPI's parameter
    # machinery, and it is the path every node hits.
    paths = ["/v1/update/", "/v1/update"]
    if settings.omaha_path_suffix:
        paths = [f"/v1/update/{settings.omaha_path_suffix.strip('/')}"]
    for path in paths:
        app.router.routes.append(Route(path, omaha_update, methods=["POST"]))

    @app.get("/health", tags=["service"])
    def health() -> JSONResponse:
        try:
            with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means "not healthy"
            return JSONResponse({"status": "unhealthy", "reason": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/config", tags=["service"])
    def config() -> JSONResponse:
        """Nebraska's GET /config (no auth): what a web client needs before signing in.
        auth_mode is Nebraska's `oidc` or `noop` (no sign-in), or Wellcar's `token`."""
        console = settings.console
        oidc = console.oidc
        auth_mode = {ConsoleAuth.OIDC: "oidc", ConsoleAuth.LAB: "noop"}.get(console.auth, "token")
        return JSONResponse({
            "access_management_url": "",
            "nebraska_version": f"wellcar {wellcar.__version__}",
            "logo": "",
            "title": "Wellcar",
            "header_style": "light",
            "login_url": "/sign-in/oidc" if oidc is not None else "/sign-in",
            "auth_mode": auth_mode,
            "oidc_issuer_url": oidc.issuer_url if oidc else "",
            "oidc_client_id": oidc.client_id if oidc else "",
            "oidc_scopes": ",".join(oidc.scopes) if oidc else "",
            "oidc_logout_url": "",
            "oidc_audience": "",
        })  # fmt: skip

    @app.get("/metrics", tags=["service"])
    def prometheus_metrics() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    # FleetLock: the protocol at the root (Zincati's base_url), its admin API under /api.
    # Nodes' paths are matched first, as Omaha's are.
    app.include_router(fleetlock_api.protocol_router)
    app.include_router(api_router)
    app.include_router(fleetlock_api.router, prefix="/api")
    if settings.sync is not None and settings.sync.host_packages_dir is not None:
        # Payloads the syncer downloaded (checked before they were kept), for the nodes.
        hosted = settings.sync.host_packages_dir
        hosted.mkdir(parents=True, exist_ok=True)
        app.mount(HOSTED_PATH.rstrip("/"), StaticFiles(directory=hosted), name="hosted-packages")
    mount_console(app, settings, tokens)
    return app
