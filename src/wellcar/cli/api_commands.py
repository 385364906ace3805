"""`wellcar api`: script the update server's REST API (apps, groups, channels, packages...).

Every command takes --server/--token (or WELLCAR_SERVER/WELLCAR_TOKEN) and prints a table,
or JSON with --json. Groups, channels and packages may be named by id or by name/version.
Failures print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.table import Table
from rich.text import Text

from wellcar.cli.api_client import ApiClient, ApiClientError
from wellcar.cli.output import UsageError, fail, out
from wellcar.logline.encode import visible
from wellcar.server.api.models import (
    AppCreate,
    Application,
    AppUpdate,
    Channel,
    ChannelCreate,
    ChannelUpdate,
    FlatcarActionInput,
    Group,
    GroupCreate,
    GroupUpdate,
    Package,
    PackageCreate,
)
from wellcar.server.fleet_codes import ActivityClass, Arch, InstanceStatus, PackageType, Severity

api_app = typer.Typer(
    help="Script the update server's REST API: apps, groups, channels, packages, instances.",
    no_args_is_help=True,
)
apps_app = typer.Typer(help="Applications.", no_args_is_help=True)
groups_app = typer.Typer(help="Groups and their rollout policy.", no_args_is_help=True)
channels_app = typer.Typer(help="Channels (which package a group gets).", no_args_is_help=True)
packages_app = typer.Typer(help="Packages (update payloads).", no_args_is_help=True)
instances_app = typer.Typer(help="Instances (machines).", no_args_is_help=True)
activity_app = typer.Typer(help="The activity feed.", no_args_is_help=True)
for _sub, _name in (
    (apps_app, "apps"), (groups_app, "groups"), (channels_app, "channels"),
    (packages_app, "packages"), (instances_app, "instances"), (activity_app, "activity"),
):  # fmt: skip
    api_app.add_typer(_sub, name=_name)

DEFAULT_SERVER = "http://127.0.0.1:8000"
Server = Annotated[
    str, typer.Option("--server", envvar="WELLCAR_SERVER", help="Update server base URL")
]
Token = Annotated[
    str,
    typer.Option("--token", envvar="WELLCAR_TOKEN", help="Bearer token", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
AppArg = Annotated[str, typer.Argument(help="Application id (braces allowed) or product id")]
GroupArg = Annotated[str, typer.Argument(help="Group id or name")]
ChannelArg = Annotated[str, typer.Argument(help="Channel id or name")]
ArchOpt = Annotated[
    str | None, typer.Option("--arch", help="all, amd64, aarch64 (arm64) or x86; or 0-3")
]


@contextmanager
def connect(server: str, token: str) -> Iterator[ApiClient]:
    """An API client; any failure inside ends the command with one line and status 1."""
    try:
        with ApiClient(server, token) as client:
            yield client
    except ApiClientError as exc:
        fail(str(exc))
    except UsageError as exc:
        fail(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{where}: {first['msg']}" if where else str(first["msg"]))


# ------------------------------------------------------------------- value parsing

_ARCHES = {"all": Arch.ALL, "amd64": Arch.AMD64, "x86_64": Arch.AMD64, "x64": Arch.AMD64,
           "aarch64": Arch.AARCH64, "arm64": Arch.AARCH64, "x86": Arch.X86}  # fmt: skip
_TYPES = {"flatcar": PackageType.FLATCAR, "docker": PackageType.DOCKER,
          "rocket": PackageType.ROCKET, "other": PackageType.OTHER}  # fmt: skip


def _status_key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_STATUSES = {_status_key(s.name): s for s in InstanceStatus} | {
    "granted": InstanceStatus.UPDATE_GRANTED
}
_SEVERITIES = {s.name.lower(): s for s in Severity}


def parse_arch(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value.isdigit() and int(value) in {int(a) for a in Arch}:
        return int(value)
    if value in _ARCHES:
        return int(_ARCHES[value])
    raise UsageError(f"--arch {text!r}: use all, amd64, aarch64 (arm64), x86 or 0-3")


def parse_type(text: str) -> int:
    value = text.strip().lower()
    if value.isdigit() and int(value) in {int(t) for t in PackageType}:
        return int(value)
    if value in _TYPES:
        return int(_TYPES[value])
    raise UsageError(f"--type {text!r}: use flatcar, docker, rocket, other or 1-4")


def parse_status(text: str | None) -> int:
    if text is None:
        return 0
    value = text.strip()
    if value.isdigit() and 0 <= int(value) <= 8:
        return int(value)
    found = _STATUSES.get(_status_key(value))
    if found is None:
        names = ", ".join(s.name.lower().replace("_", "-") for s in InstanceStatus)
        raise UsageError(f"--status {text!r}: use {names} or 1-8")
    return int(found)


def parse_severity(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value.isdigit() and 1 <= int(value) <= 4:
        return int(value)
    if value in _SEVERITIES:
        return int(_SEVERITIES[value])
    raise UsageError(f"--severity {text!r}: use success, info, warning, error or 1-4")


def arch_name(code: int) -> str:
    try:
        return Arch(code).name.lower()
    except ValueError:
        return str(code)


def status_name(code: int | None) -> str:
    if code is None:
        return "undefined"
    try:
        return InstanceStatus(code).name.lower().replace("_", "-")
    except ValueError:
        return str(code)


def _enum_name(enum: Callable[[int], Any], code: int) -> str:
    try:
        return str(enum(code).name.lower().replace("_", "-"))
    except ValueError:
        return str(code)


def short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


# -------------------------------------------------------------------------- output


def emit_json(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json", by_alias=True)
    elif isinstance(data, dict):
        payload = data
    else:
        payload = [item.model_dump(mode="json", by_alias=True) for item in data]
    typer.echo(json.dumps(payload, indent=2))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        # Server data, shown as text: no Rich markup, no terminal control sequences.
        t.add_row(*(Text(visible(cell)) for cell in row))
    out.print(t)


def show_apps(apps: Sequence[Application]) -> None:
    table(None, ["ID", "NAME", "PRODUCT ID", "GROUPS", "CHANNELS", "INSTANCES (24h)"], [
        [a.id, a.name, a.product_id or "-", str(len(a.groups)), str(len(a.channels)),
         str(a.instances.count)]
        for a in apps
    ])  # fmt: skip


def show_app(app: Application) -> None:
    table(f"application {app.name}", ["FIELD", "VALUE"], [
        ["id", app.id], ["name", app.name], ["product id", app.product_id or "-"],
        ["description", app.description or "-"], ["created", short_time(app.created_ts)],
        ["instances (24h)", str(app.instances.count)],
    ])  # fmt: skip
    if app.channels:
        show_channels(app.channels)
    if app.groups:
        show_groups(app.groups)


def show_groups(groups: Sequence[Group]) -> None:
    rows = []
    for g in groups:
        channel = g.channel.name if g.channel else "-"
        version = g.channel.package.version if g.channel and g.channel.package else "-"
        office = (
            f"{g.policy_office_hours_spec} {g.policy_timezone}" if g.policy_office_hours else "-"
        )
        rows.append([
            g.id, g.name, g.track, channel, version,
            "on" if g.policy_updates_enabled else "off", "on" if g.policy_safe_mode else "off",
            f"{g.policy_max_updates_per_period} / {g.policy_period_interval}",
            g.policy_update_timeout, office,
        ])  # fmt: skip
    table(None, ["ID", "NAME", "TRACK", "CHANNEL", "VERSION", "UPDATES", "SAFE MODE",
                 "MAX / PERIOD", "TIMEOUT", "OFFICE HOURS"], rows)  # fmt: skip


def show_channels(channels: Sequence[Channel]) -> None:
    table(None, ["ID", "NAME", "ARCH", "PACKAGE", "COLOR"], [
        [c.id, c.name, arch_name(c.arch), c.package.version if c.package else "-", c.color or "-"]
        for c in channels
    ])  # fmt: skip


def show_packages(packages: Sequence[Package]) -> None:
    table(None, ["ID", "VERSION", "ARCH", "TYPE", "SIZE", "URL", "SHA256", "BLACKLIST"], [
        [p.id, p.version, arch_name(p.arch), _enum_name(PackageType, p.type), p.size or "-",
         (p.url + (p.filename or "")), p.flatcar_action.sha256 if p.flatcar_action else "-",
         ", ".join(p.channels_blacklist) or "-"]
        for p in packages
    ])  # fmt: skip


# -------------------------------------------------------------------------- apps


@apps_app.command("list")
def apps_list(server: Server = DEFAULT_SERVER, token: Token = "", as_json: AsJson = False) -> None:
    """List applications."""
    with connect(server, token) as api:
        apps = api.list_apps()
    emit_json(apps) if as_json else show_apps(apps)


@apps_app.command("create")
def apps_create(
    name: Annotated[str, typer.Argument(help="Display name")],
    app_id: Annotated[
        str | None, typer.Option("--id", help="UUID to create it with, e.g. Flatcar's app id")
    ] = None,
    description: Annotated[str, typer.Option(help="Free text")] = "",
    product_id: Annotated[
        str | None, typer.Option("--product-id", help="Product id, e.g. io.wellcar.os")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create an application."""
    with connect(server, token) as api:
        body = AppCreate(name=name, description=description, id=app_id, product_id=product_id)
        app = api.create_app(body)
    emit_json(app) if as_json else show_app(app)


@apps_app.command("show")
def apps_show(
    app: AppArg, server: Server = DEFAULT_SERVER, token: Token = "", as_json: AsJson = False
) -> None:
    """Show an application with its channels and groups."""
    with connect(server, token) as api:
        found = api.get_app(app)
    emit_json(found) if as_json else show_app(found)


@apps_app.command("update")
def apps_update(
    app: AppArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    product_id: Annotated[
        str | None, typer.Option("--product-id", help="New product id ('' clears it)")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Change an application's name, description or product id."""
    with connect(server, token) as api:
        fields = {"name": name, "description": description, "product_id": product_id}
        body = AppUpdate(**{k: v for k, v in fields.items() if v is not None})
        updated = api.update_app(app, body)
    emit_json(updated) if as_json else show_app(updated)


@apps_app.command("delete")
def apps_delete(
    app: AppArg, server: Server = DEFAULT_SERVER, token: Token = "", as_json: AsJson = False
) -> None:
    """Delete an application with everything in it."""
    with connect(server, token) as api:
        found = api.get_app(app)
        api.delete_app(found.id)
    emit_json({"deleted": found.id}) if as_json else out.print(f"deleted application {found.id}")


# ------------------------------------------------------------------------ groups

ChannelOpt = Annotated[
    str | None, typer.Option("--channel", help="Channel id or name ('none' detaches)")
]
UpdatesOpt = Annotated[
    bool | None, typer.Option("--updates/--no-updates", help="Allow updates at all")
]
SafeOpt = Annotated[
    bool | None,
    typer.Option("--safe-mode/--no-safe-mode", help="One instance first; stop on timeouts"),
]
OfficeOpt = Annotated[
    bool | None,
    typer.Option("--office-hours/--no-office-hours", help="Only start updates in office hours"),
]
TimezoneOpt = Annotated[str | None, typer.Option(help="IANA time zone for office hours")]
SpecOpt = Annotated[
    str | None, typer.Option("--office-hours-spec", help="e.g. 'mon-fri 09:00-17:00'")
]
PeriodOpt = Annotated[str | None, typer.Option("--period-interval", help="e.g. '15 minutes'")]
MaxOpt = Annotated[
    int | None, typer.Option("--max-updates", min=1, help="Updates allowed per period")
]
TimeoutOpt = Annotated[str | None, typer.Option("--update-timeout", help="e.g. '60 minutes'")]
TrackOpt = Annotated[str | None, typer.Option(help="Omaha track clients send (default: the id)")]


def _group_policy(
    api: ApiClient,
    app: str,
    channel: str | None,
    **fields: Any,
) -> dict[str, Any]:
    policy = {k: v for k, v in fields.items() if v is not None}
    if channel is not None:
        if channel.strip().lower() in ("", "none"):
            policy["channel_id"] = None
        else:
            policy["channel_id"] = api.find_channel(app, channel).id
    return policy


@groups_app.command("list")
def groups_list(
    app: AppArg, server: Server = DEFAULT_SERVER, token: Token = "", as_json: AsJson = False
) -> None:
    """List an application's groups with their channel and policy."""
    with connect(server, token) as api:
        groups = api.list_groups(app)
    emit_json(groups) if as_json else show_groups(groups)


@groups_app.command("create")
def groups_create(
    app: AppArg,
    name: Annotated[str, typer.Argument(help="Group name")],
    channel: ChannelOpt = None,
    track: TrackOpt = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    updates: UpdatesOpt = None,
    safe_mode: SafeOpt = None,
    office_hours: OfficeOpt = None,
    timezone: TimezoneOpt = None,
    office_hours_spec: SpecOpt = None,
    period_interval: PeriodOpt = None,
    max_updates: MaxOpt = None,
    update_timeout: TimeoutOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a group (safe mode on, 2 updates per 15 minutes unless told otherwise)."""
    with connect(server, token) as api:
        fields = _group_policy(
            api, app, channel, track=track, description=description,
            policy_updates_enabled=updates, policy_safe_mode=safe_mode,
            policy_office_hours=office_hours, policy_timezone=timezone,
            policy_office_hours_spec=office_hours_spec, policy_period_interval=period_interval,
            policy_max_updates_per_period=max_updates, policy_update_timeout=update_timeout,
        )  # fmt: skip
        group = api.create_group(app, GroupCreate(name=name, **fields))
    emit_json(group) if as_json else show_groups([group])


@groups_app.command("update")
def groups_update(
    app: AppArg,
    group: GroupArg,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    channel: ChannelOpt = None,
    track: TrackOpt = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    updates: UpdatesOpt = None,
    safe_mode: SafeOpt = None,
    office_hours: OfficeOpt = None,
    timezone: TimezoneOpt = None,
    office_hours_spec: SpecOpt = None,
    period_interval: PeriodOpt = None,
    max_updates: MaxOpt = None,
    update_timeout: TimeoutOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Change a group; options left out keep their value."""
    with connect(server, token) as api:
        found = api.find_group(app, group)
        fields = _group_policy(
            api, app, channel, name=name, track=track, description=description,
            policy_updates_enabled=updates, policy_safe_mode=safe_mode,
            policy_office_hours=office_hours, policy_timezone=timezone,
            policy_office_hours_spec=office_hours_spec, policy_period_interval=period_interval,
            policy_max_updates_per_period=max_updates, policy_update_timeout=update_timeout,
        )  # fmt: skip
        updated = api.update_group(app, found.id, GroupUpdate(**fields))
    emit_json(updated) if as_json else show_groups([updated])


@groups_app.command("delete")
def groups_delete(
    app: AppArg,
    group: GroupArg,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Delete a group (its instances stay, without a group)."""
    with connect(server, token) as api:
        found = api.find_group(app, group)
        api.delete_group(app, found.id)
    emit_json({"deleted": found.id}) if as_json else out.print(f"deleted group {found.id}")


# ---------------------------------------------------------------------- channels

PackageOpt = Annotated[
    str | None, typer.Option("--package", help="Package version or id ('none' empties it)")
]


@channels_app.command("list")
def channels_list(
    app: AppArg, server: Server = DEFAULT_SERVER, token: Token = "", as_json: AsJson = False
) -> None:
    """List an application's channels and the package each serves."""
    with connect(server, token) as api:
        channels = api.list_channels(app)
    emit_json(channels) if as_json else show_channels(channels)


@channels_app.command("create")
def channels_create(
    app: AppArg,
    name: Annotated[str, typer.Argument(help="Channel name, e.g. stable")],
    arch: ArchOpt = None,
    color: Annotated[str, typer.Option(help="UI colour")] = "",
    package: PackageOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a channel (amd64 unless --arch), optionally serving a package."""
    with connect(server, token) as api:
        code = parse_arch(arch)
        channel_arch = code if code is not None else int(Arch.AMD64)
        package_id = None
        if package is not None and package.strip().lower() not in ("", "none"):
            package_id = api.find_package(app, package, arch=channel_arch).id
        body = ChannelCreate(name=name, color=color, arch=channel_arch, package_id=package_id)
        channel = api.create_channel(app, body)
    emit_json(channel) if as_json else show_channels([channel])


@channels_app.command("update")
def channels_update(
    app: AppArg,
    channel: ChannelArg,
    package: PackageOpt = None,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    color: Annotated[str | None, typer.Option(help="New UI colour")] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Pick the channel when several share its name")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Point a channel at another package (this starts rollouts), rename or recolour it."""
    with connect(server, token) as api:
        found = api.find_channel(app, channel, parse_arch(arch))
        fields: dict[str, Any] = {"name": name, "color": color}
        body = {k: v for k, v in fields.items() if v is not None}
        if package is not None:
            if package.strip().lower() in ("", "none"):
                body["package_id"] = None
            else:
                body["package_id"] = api.find_package(app, package, arch=found.arch).id
        updated = api.update_channel(app, found.id, ChannelUpdate(**body))
    emit_json(updated) if as_json else show_channels([updated])


@channels_app.command("delete")
def channels_delete(
    app: AppArg,
    channel: ChannelArg,
    arch: ArchOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Delete a channel (groups on it are left without a channel)."""
    with connect(server, token) as api:
        found = api.find_channel(app, channel, parse_arch(arch))
        api.delete_channel(app, found.id)
    emit_json({"deleted": found.id}) if as_json else out.print(f"deleted channel {found.id}")


# ---------------------------------------------------------------------- packages


@packages_app.command("list")
def packages_list(
    app: AppArg,
    search: Annotated[str | None, typer.Option(help="Only versions containing this")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """List an application's packages, newest version first."""
    with connect(server, token) as api:
        packages = api.list_packages(app, search)
    emit_json(packages) if as_json else show_packages(packages)


@packages_app.command("create")
def packages_create(
    app: AppArg,
    version: Annotated[str, typer.Option(help="Semantic version, e.g. 3815.2.0")],
    url: Annotated[str, typer.Option(help="Base URL the payload is downloaded from")],
    filename: Annotated[str | None, typer.Option(help="Payload file name under the URL")] = None,
    size: Annotated[int | None, typer.Option(min=0, help="Payload size in bytes")] = None,
    hash_: Annotated[str | None, typer.Option("--hash", help="base64 SHA-1 of the payload")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="base64 SHA-256 of the payload (checked by clients)")
    ] = None,
    arch: ArchOpt = None,
    type_: Annotated[
        str, typer.Option("--type", help="flatcar, docker, rocket, other (or 1-4)")
    ] = "flatcar",
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    blacklist: Annotated[
        list[str] | None,
        typer.Option("--blacklist", help="Channel (id or name) never to serve it; repeatable"),
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Register a package. Nothing is downloaded or computed: give size and hashes."""
    with connect(server, token) as api:
        code = parse_arch(arch)
        package_arch = code if code is not None else int(Arch.AMD64)
        package_type = parse_type(type_)
        if sha256 and package_type != PackageType.FLATCAR:
            raise UsageError("--sha256 is only used by packages of type flatcar")
        blacklist_ids = [
            api.find_channel(app, ch, package_arch or None).id for ch in blacklist or []
        ]
        fields: dict[str, Any] = {
            "version": version, "url": url, "filename": filename, "size": size, "hash": hash_,
            "description": description, "arch": package_arch, "type": package_type,
            "channels_blacklist": blacklist_ids or None,
            "flatcar_action": FlatcarActionInput(sha256=sha256) if sha256 else None,
        }  # fmt: skip
        body = PackageCreate(**{k: v for k, v in fields.items() if v is not None})
        created = api.create_package(app, body)
    emit_json(created) if as_json else show_packages([created])


@packages_app.command("delete")
def packages_delete(
    app: AppArg,
    package: Annotated[str, typer.Argument(help="Package id or version")],
    arch: ArchOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Delete a package that no channel serves."""
    with connect(server, token) as api:
        found = api.find_package(app, package, parse_arch(arch))
        api.delete_package(app, found.id)
    emit_json({"deleted": found.id}) if as_json else out.print(
        f"deleted package {found.version} ({found.id})"
    )


# --------------------------------------------------------------------- instances

_SORTS = {"alias": "0", "id": "0", "ip": "1", "last-check": "2", "last_check": "2"}


@instances_app.command("list")
def instances_list(
    app: AppArg,
    group: GroupArg,
    status: Annotated[
        str | None,
        typer.Option(
            help="undefined, update-granted, error, complete, installed, downloaded, "
            "downloading, on-hold (or 1-8)"
        ),
    ] = None,
    version: Annotated[str | None, typer.Option(help="Only this version")] = None,
    search: Annotated[str | None, typer.Option(help="Machine id, alias or IP contains")] = None,
    sort: Annotated[str, typer.Option(help="alias, ip or last-check")] = "alias",
    asc: Annotated[bool, typer.Option("--asc", help="Ascending order")] = False,
    duration: Annotated[str, typer.Option(help="Seen within 1h, 1d, 7d or 30d")] = "30d",
    page: Annotated[int, typer.Option(min=1, help="Page number")] = 1,
    perpage: Annotated[int, typer.Option(min=1, max=1000, help="Instances per page")] = 50,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """List a group's instances, a page at a time."""
    with connect(server, token) as api:
        if sort not in _SORTS:
            raise UsageError(f"--sort {sort!r}: use alias, ip or last-check")
        found = api.find_group(app, group)
        result = api.list_instances(
            app, found.id, status=parse_status(status), version=version, search=search,
            sort=_SORTS[sort], descending=not asc, duration=duration, page=page, perpage=perpage,
        )  # fmt: skip
    if as_json:
        emit_json(result)
        return
    first = (page - 1) * perpage
    table(
        f"{found.name}: instances {first + 1 if result.instances else 0}-"
        f"{first + len(result.instances)} of {result.total}",
        ["ID", "ALIAS", "IP", "VERSION", "STATUS", "LAST CHECK", "UPDATING TO"],
        [
            [i.id, i.alias if i.alias != i.id else "-", i.ip,
             i.application.version if i.application else "-",
             status_name(i.application.status) if i.application else "-",
             short_time(i.application.last_check_for_updates) if i.application else "-",
             (i.application.last_update_version or "-")
             if i.application and i.application.update_in_progress else "-"]
            for i in result.instances
        ],
    )  # fmt: skip


# ---------------------------------------------------------------------- activity


@activity_app.command("list")
def activity_list(
    app: Annotated[str | None, typer.Option(help="Application id or product id")] = None,
    group: Annotated[str | None, typer.Option(help="Group id (or name with --app)")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel id (or name with --app)")] = None,
    instance: Annotated[str | None, typer.Option(help="Machine id")] = None,
    version: Annotated[str | None, typer.Option(help="Version")] = None,
    severity: Annotated[
        str | None, typer.Option(help="success, info, warning, error (or 1-4)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="RFC 3339 time; default 3 days ago")] = None,
    end: Annotated[str | None, typer.Option(help="RFC 3339 time; default now")] = None,
    page: Annotated[int, typer.Option(min=1, help="Page number")] = 1,
    perpage: Annotated[int, typer.Option(min=1, max=1000, help="Entries per page")] = 50,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Show the activity feed, newest first."""
    with connect(server, token) as api:
        group_id = api.find_group(app, group).id if group and app else group
        channel_id = api.find_channel(app, channel).id if channel and app else channel
        result = api.list_activity(
            app=app, group_id=group_id, channel_id=channel_id, instance_id=instance,
            version=version, severity=parse_severity(severity), start=start, end=end,
            page=page, perpage=perpage,
        )  # fmt: skip
    if as_json:
        emit_json(result)
        return
    table(
        f"activity: {len(result.activities)} of {result.totalCount}",
        ["TIME", "EVENT", "SEVERITY", "APP", "GROUP", "CHANNEL", "VERSION", "INSTANCE"],
        [
            [short_time(a.created_ts), _enum_name(ActivityClass, a.class_),
             _enum_name(Severity, a.severity), a.application_name, a.group_name or "-",
             a.channel_name or "-", a.version or "-", a.instance_id or "-"]
            for a in result.activities
        ],
    )  # fmt: skip
