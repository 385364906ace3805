"""`wellcar agent`: run the node's update agent, and talk to it as update_engine_client does.

``run`` is the daemon (update_engine and locksmith in one). The other commands talk to it
over its control socket (``STATE_DIR/agent.sock``, see ``wellcar.agent.control``);
``status`` also works without a running agent, from the saved status and the slot table.
Mistakes print one ``error:`` line on stderr and exit with status 1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wellcar.agent.config import AgentConfig, load_config
from wellcar.agent.control import (
    AgentNotRunningError,
    ControlError,
    ControlTimeoutError,
    read_slots,
    request,
    socket_path,
    status_document,
)
from wellcar.agent.errors import AgentError
from wellcar.agent.runner import run_agent
from wellcar.agent.slot_backend import (
    BlockDeviceGpt,
    BlockDeviceSlotBackend,
    FileSlotBackend,
    SlotBackendError,
)
from wellcar.agent.status_store import StatusStore
from wellcar.cli.log_options import LogFormatChoice
from wellcar.cli.output import UsageError, err, fail, out
from wellcar.disk import DiskError, SlotInfo, SlotTable

agent_app = typer.Typer(
    help="The node's update agent: run it; ask it for status, checks, updates, rollbacks.",
    no_args_is_help=True,
)
log = logging.getLogger("wellcar.agent.run")

RootOpt = Annotated[
    Path, typer.Option("--root", help="Read update.conf, the release file and state under here")
]
BrandOpt = Annotated[str, typer.Option("--brand", help="The OS brand: /etc/BRAND/update.conf")]
DiskImageOpt = Annotated[
    Path | None,
    typer.Option(
        "--disk-image",
        help="A simulated node on this disk image file (demos, tests) instead of this machine",
    ),
]
SocketOpt = Annotated[
    Path | None,
    typer.Option("--socket", help="The agent's control socket [default: STATE_DIR/agent.sock]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@contextmanager
def agent_errors() -> Iterator[None]:
    """Configuration, disk and control problems end the command with one line."""
    try:
        yield
    except (AgentError, ControlError, DiskError, SlotBackendError, UsageError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}")


@contextmanager
def _quiet_config_warnings() -> Iterator[None]:
    # load_config logs its warnings (unknown keys, assumed board): `run` shows them, the
    # client commands would only repeat them on every call.
    logger = logging.getLogger("wellcar.agent.config")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load(root: Path, brand: str) -> AgentConfig:
    with agent_errors(), _quiet_config_warnings():
        return load_config(root, brand)


# ------------------------------------------------------------------------------- run


@agent_app.command("run")
def run(
    root: RootOpt = Path("/"),
    brand: BrandOpt = "wellcar",
    disk_image: DiskImageOpt = None,
    allow_unsigned: Annotated[
        bool,
        typer.Option(help="Run without payload signing keys (installs unsigned payloads)"),
    ] = False,
    log_level: Annotated[LogLevel, typer.Option(help="Log level")] = LogLevel.INFO,
    log_format: Annotated[
        LogFormatChoice, typer.Option(help="Log lines: logfmt, or JSON one object a line")
    ] = LogFormatChoice.LOGFMT,
) -> None:
    """Run the agent: assess the boot, then check, install and reboot on schedule."""
    with agent_errors():
        run_agent(root, brand, disk_image, allow_unsigned, log_level.value, log_format.value)


# ---------------------------------------------------------------------------- status


def _read_only_slots(
    config: AgentConfig, image: Path | None
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The slot table as the daemon would see it, without writing anything."""
    if image is not None:
        if not image.is_file():
            raise UsageError(f"--disk-image {image}: no such file")
        node = FileSlotBackend(image, config.state_dir)

        def slots() -> tuple[SlotInfo, SlotInfo]:
            if node.powered_on:
                return node.slot_table().slots()
            return SlotTable.for_image(image, node.status_path).slots()

        return read_slots(slots)
    machine = BlockDeviceSlotBackend(state_dir=config.state_dir, brand=config.brand)
    return read_slots(
        lambda: SlotTable(
            BlockDeviceGpt(machine.disk()), machine.status_path, active=machine.booted_slot()
        ).slots()
    )


def _offline_status(config: AgentConfig, image: Path | None) -> dict[str, Any]:
    status = StatusStore(config.status_path).load()
    slots, slots_error = _read_only_slots(config, image)
    daemon = {"running": False}
    return status_document(status, config, daemon=daemon, slots=slots, slots_error=slots_error)


def _epoch(stamp: str | None) -> int:
    return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0


def _one_line(value: object) -> str:
    return "" if value is None else " ".join(str(value).split())


def _print_status(document: dict[str, Any]) -> None:
    status, config, daemon = document["status"], document["config"], document["daemon"]
    size = status["new_payload_size"]
    progress = status["downloaded_bytes"] / size if size else 0.0
    # The first five lines are update_engine_client -status's, in its order and format.
    lines = [
        f"LAST_CHECKED_TIME={_epoch(status['last_check_time'])}",
        f"PROGRESS={progress:f}",
        f"CURRENT_OP={status['state']}",
        f"NEW_VERSION={status['new_version'] or '0.0.0'}",
        f"NEW_SIZE={size}",
        f"CURRENT_VERSION={status['current_version'] or config['version']}",
        f"LAST_ERROR_CODE={_one_line(status['last_error_code'])}",
        f"LAST_ERROR={_one_line(status['last_error_message'])}",
    ]
    if status["rolled_back_version"]:
        lines.append(f"ROLLED_BACK_VERSION={status['rolled_back_version']}")
    lines += [f"SERVER={config['server'] or 'disabled'}", f"GROUP={config['group']}"]
    if daemon["running"]:
        lines.append(f"DAEMON=running pid={daemon['pid']}")
    else:
        lines.append("DAEMON=not running (the state shown is the last one saved)")
    if document["boot"]:
        lines.append(f"BOOT={document['boot']['outcome']}")
    if document["slots_error"]:
        lines.append(f"SLOTS=unavailable: {_one_line(document['slots_error'])}")
    for line in lines:
        typer.echo(line)
    if document["slots"]:
        table = Table(header_style="bold")
        for column in ("SLOT", "PART", "STATE", "PRIORITY", "TRIES", "SUCCESSFUL", "ROLE",
                       "VERSION"):  # fmt: skip
            table.add_column(column)
        for slot in document["slots"]:
            role = "running" if slot["active"] else "update target"
            table.add_row(
                slot["slot"], f"{slot['partition']} {slot['label']}", slot["state"],
                str(slot["priority"]), str(slot["tries"]), "yes" if slot["successful"] else "no",
                role, slot["version"] or "-",
            )  # fmt: skip
        out.print(table)


@agent_app.command("status")
def status(
    root: RootOpt = Path("/"),
    brand: BrandOpt = "wellcar",
    disk_image: Annotated[
        Path | None,
        typer.Option("--disk-image", help="Without a running agent: the simulated node's image"),
    ] = None,
    socket: SocketOpt = None,
    as_json: AsJson = False,
) -> None:
    """Show the update status and both slots (update_engine_client -status)."""
    config = _load(root, brand)
    path = socket or socket_path(config)
    with agent_errors():
        try:
            response = request(path, "status", timeout=5.0)
            document = {k: v for k, v in response.items() if k not in ("ok", "command")}
        except AgentNotRunningError:
            document = _offline_status(config, disk_image)
        except ControlError as exc:
            err.print(f"warning: {exc}; showing the saved status", markup=False)
            document = _offline_status(config, disk_image)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_status(document)


# ------------------------------------------------------------------- other commands


def _call(
    root: Path, brand: str, socket: Path | None, command: str, timeout: float, **args: Any
) -> dict[str, Any]:
    config = _load(root, brand)
    path = socket or socket_path(config)
    with agent_errors():
        try:
            return request(path, command, timeout=timeout, **args)
        except ControlTimeoutError as exc:
            if command in ("check", "update"):
                fail(f"{exc}; it goes on in the agent (follow it with `wellcar agent status`)")
            raise


def _report(response: dict[str, Any], failures: tuple[str, ...]) -> None:
    if response["result"] in failures:
        fail(response["message"])
    out.print(response["message"])


TimeoutOpt = Annotated[float, typer.Option(min=0.0, help="Seconds to wait for the answer")]


@agent_app.command("check")
def check(
    root: RootOpt = Path("/"),
    brand: BrandOpt = "wellcar",
    socket: SocketOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Check for an update now; one found installs in the background (-check_for_update)."""
    response = _call(root, brand, socket, "check", timeout + 5.0, wait=timeout)
    _report(response, ("check-failed",))


@agent_app.command("update")
def update(
    root: RootOpt = Path("/"),
    brand: BrandOpt = "wellcar",
    socket: SocketOpt = None,
    timeout: TimeoutOpt = 3600.0,
) -> None:
    """Check for an update and install it now, waiting until done (-update)."""
    response = _call(root, brand, socket, "update", timeout)
    _report(response, ("failed", "check-failed"))


@agent_app.command("reset")
def reset(root: RootOpt = Path("/"), brand: BrandOpt = "wellcar", socket: SocketOpt = None) -> None:
    """Forget an installed update that waits for a reboot (-reset_status)."""
    response = _call(root, brand, socket, "reset", 30.0)
    out.print(f"status reset: {response['status']['state']}")


@agent_app.command("rollback")
def rollback(
    root: RootOpt = Path("/"), brand: BrandOpt = "wellcar", socket: SocketOpt = None
) -> None:
    """Boot the other slot next (it must be bootable); takes effect on reboot."""
    response = _call(root, brand, socket, "rollback", 30.0)
    slot = response["slot"]
    version = slot["version"] or "unknown version"
    out.print(f"slot {slot['slot']} ({version}) boots next: reboot to switch to it")
