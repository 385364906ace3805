"""The console's pages: applications → application → group → instances → instance."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection, Engine

from wellcar.server.api.common import read_tx
from wellcar.server.api.console.access import require_viewer
from wellcar.server.api.console.charts import status_chart, version_chart
from wellcar.server.api.console.page_errors import ConsoleRoute
from wellcar.server.api.console.templates import STATUS_NAMES, render
from wellcar.server.data import applications as apps
from wellcar.server.data import groups, instances, packages, stats
from wellcar.server.data.durations import DURATIONS, parse_duration
from wellcar.server.fleetlock import FleetLock

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PER_PAGE = 20
PERIODS = tuple(DURATIONS)  # 1h, 1d, 7d, 30d
DEFAULT_PERIOD = "7d"
Period = Annotated[str, Query(max_length=10)]


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def now_of(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


@router.get("/")
def applications_page(request: Request) -> HTMLResponse:
    require_viewer(request)
    with read_tx(engine_of(request)) as conn:
        found = apps.list_apps(conn, 1000, 0, now_of(request))
    return render(request, "applications.html", {"apps": found.applications})


def application_context(conn: Connection, app_ref: str, now: datetime) -> dict[str, Any]:
    app_id = apps.resolve_app(conn, app_ref)
    return {
        "app": apps.get_app(conn, app_id, now),
        "packages": packages.list_packages(conn, app_id, 200, 0, None).packages,
        "new_group": {},
        "errors": {},
        "new_channel": {},
        "channel_errors": {},
    }


@router.get("/reboots")
def reboots_page(request: Request) -> HTMLResponse:
    """FleetLock groups: their slots and which nodes hold one."""
    require_viewer(request)
    fleetlock: FleetLock = request.app.state.fleetlock
    return render(request, "reboots.html", {"groups": fleetlock.groups()})


@router.get("/apps/{app_id}")
def application_page(request: Request, app_id: str) -> HTMLResponse:
    require_viewer(request)
    with read_tx(engine_of(request)) as conn:
        context = application_context(conn, app_id, now_of(request))
    return render(request, "application.html", context)


def policy_values(group: groups.Group) -> dict[str, Any]:
    """The policy form's values as stored (a failed post shows the sent values instead)."""
    values = {f.name: getattr(group, f.name) for f in dataclasses.fields(groups.NewGroup)}
    values["channel_id"] = group.channel_id or ""
    values["policy_timezone"] = group.policy_timezone or ""
    return values


def group_context(
    conn: Connection, app_ref: str, group_id: str, period: str, now: datetime
) -> dict[str, Any]:
    parse_duration(period)  # InvalidInput names the choices
    app_id = apps.resolve_app(conn, app_ref)
    group = groups.get_group(conn, app_id, group_id)
    channel_version = (
        group.channel.package.version if group.channel and group.channel.package else None
    )
    fine = period in ("1h", "1d")
    counts = stats.instances_stats(conn, group.id, channel_version, period, now)
    charts = {
        "version": version_chart(stats.version_timeline(conn, group.id, period, now), fine),
        "status": status_chart(stats.status_timeline(conn, group.id, period, now), fine),
    }
    return {
        "app": apps.get_app(conn, app_id, now),
        "group": group,
        "period": period,
        "periods": PERIODS,
        "counts": counts,
        "breakdown": stats.version_breakdown(conn, group.id, now),
        # "<" escaped: the JSON sits in a <script> element and must not end it.
        "charts_json": json.dumps(charts).replace("<", "\\u003c"),
        "policy": policy_values(group),
        "errors": {},
        "saved": False,
    }


@router.get("/apps/{app_id}/groups/{group_id}")
def group_page(
    request: Request, app_id: str, group_id: str, period: Period = DEFAULT_PERIOD, saved: str = ""
) -> HTMLResponse:
    require_viewer(request)
    with read_tx(engine_of(request)) as conn:
        context = group_context(conn, app_id, group_id, period, now_of(request))
    context["saved"] = saved == "1"
    return render(request, "group.html", context)


@router.get("/apps/{app_id}/groups/{group_id}/instances")
def instances_page(
    request: Request,
    app_id: str,
    group_id: str,
    period: Period = DEFAULT_PERIOD,
    status: Annotated[int, Query(ge=0, le=8)] = 0,
    version: Annotated[str, Query(max_length=100)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    require_viewer(request)
    now = now_of(request)
    with read_tx(engine_of(request)) as conn:
        resolved = apps.resolve_app(conn, app_id)
        group = groups.get_group(conn, resolved, group_id)
        query = instances.InstanceQuery(
            app_id=resolved,
            group_id=group.id,
            now=now,
            duration=period,
            status=status,
            version=version,
            search_value=q,
            sort="2",  # last check-in, newest first
            limit=PER_PAGE,
            offset=(page - 1) * PER_PAGE,
        )
        found = instances.list_instances(conn, query)
        versions = [e.version for e in stats.version_breakdown(conn, group.id, now)]
        app = apps.get_app(conn, resolved, now)
    pages = max(1, -(-found.total // PER_PAGE))
    return render(
        request,
        "instances.html",
        {
            "app": app,
            "group": group,
            "found": found,
            "filters": {"period": period, "status": status, "version": version, "q": q},
            "periods": PERIODS,
            "statuses": STATUS_NAMES,
            "versions": versions,
            "page": page,
            "pages": pages,
        },
    )


@router.get("/apps/{app_id}/groups/{group_id}/instances/{instance_id}")
def instance_page(request: Request, app_id: str, group_id: str, instance_id: str) -> HTMLResponse:
    require_viewer(request)
    now = now_of(request)
    with read_tx(engine_of(request)) as conn:
        resolved = apps.resolve_app(conn, app_id)
        group = groups.get_group(conn, resolved, group_id)
        instance = instances.get_instance(conn, resolved, instance_id)
        history = instances.status_history(conn, resolved, group.id, instance_id, 500)
        app = apps.get_app(conn, resolved, now)
    return render(
        request,
        "instance.html",
        {"app": app, "group": group, "instance": instance, "history": history},
    )
