"""The console's Jinja2 templates and the filters they use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from wellcar.server.api.console.access import current_viewer
from wellcar.server.fleet_codes import Arch, InstanceStatus

STATUS_NAMES = {
    int(InstanceStatus.UNDEFINED): "Undefined",
    int(InstanceStatus.UPDATE_GRANTED): "Update granted",
    int(InstanceStatus.ERROR): "Error",
    int(InstanceStatus.COMPLETE): "Complete",
    int(InstanceStatus.INSTALLED): "Installed",
    int(InstanceStatus.DOWNLOADED): "Downloaded",
    int(InstanceStatus.DOWNLOADING): "Downloading",
    int(InstanceStatus.ON_HOLD): "On hold",
}
ARCH_NAMES = {int(Arch.ALL): "all", int(Arch.AMD64): "amd64", int(Arch.AARCH64): "aarch64",
              int(Arch.X86): "x86"}  # fmt: skip


def _timestamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _status_name(value: int | None) -> str:
    return STATUS_NAMES.get(value or int(InstanceStatus.UNDEFINED), str(value))


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("wellcar.server.api.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = _timestamp
    env.filters["status_name"] = _status_name
    env.filters["arch_name"] = lambda a: ARCH_NAMES.get(a, str(a))
    env.globals["STATUS_NAMES"] = STATUS_NAMES
    return env


ENV = _environment()


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """A page; `viewer` (who is looking, see access.py) is in every page's context."""
    page = ENV.get_template(template).render(
        request=request, viewer=current_viewer(request), **context
    )
    return HTMLResponse(page, status_code=status)
