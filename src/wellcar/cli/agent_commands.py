"""`wellcar agent`: run the node's update agent, and talk to it as update_engine_client does.

``run`` is the daemon (update_engine and locksmith in one). The other commands talk to it
over its control socket (``STATE_DIR/agent.sock``, see ``wellcar.agent.control``);
``status`` also works without a running agent, from the saved status and the slot table.
Mistakes print one ``error:`` line on stderr and exit with status 1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from wellcar.agent.assemble import build_parts, trusted_keys_from
from wellcar.agent.config import MACHINE_ID_PATH, AgentConfig, NodeIdentity, load_config
from wellcar.agent.config import load_identity as load_node_identity
from wellcar.agent.control import (
    AgentNotRunningError,
    AgentService,
    ControlError,
    ControlTimeoutError,
    read_slots,
    request,
    socket_path,
    status_document,
)
from wellcar.agent.daemon import UpdateAgent
from wellcar.agent.errors import AgentError
from wellcar.agent.slot_backend import (
    BlockDeviceGpt,
    BlockDeviceSlotBackend,
    FileSlotBackend,
    SlotBackend,
    SlotBackendError,
)
from wellcar.agent.status_store import StatusStore
from wellcar.cli.output import UsageError, err, fail, out
from wellcar.disk import DiskError, SlotInfo, SlotTable, read_gpt
from wellcar.server.logging_setup import configure_logging

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


_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


def _simulated_identity(config: AgentConfig, backend: FileSlotBackend) -> NodeIdentity:
    """A simulated node is its disk: the machine id is ROOT/etc/machine-id if there is one,
    else the image's disk GUID; the boot id is the simulated boot's."""
    machine_id = ""
    path = config.root / MACHINE_ID_PATH.lstrip("/")
    if path.is_file():
        machine_id = path.read_text(encoding="utf-8", errors="replace").strip().lower()
    if not _MACHINE_ID.fullmatch(machine_id):
        machine_id = read_gpt(backend.image).disk_guid.hex
    return NodeIdentity(
        version=config.version,
        board=config.board,
        machine_id=machine_id,
        boot_id=str(uuid.UUID(backend.boot_id())),
    )


class _RebootHook:
    """FileSlotBackend's on_reboot, pointed at the service once that exists."""

    def __init__(self) -> None:
        self.target: Callable[[], None] | None = None

    def __call__(self) -> None:
        if self.target is not None:
            self.target()


def _simulated_node(config: AgentConfig, image: Path, on_reboot: _RebootHook) -> FileSlotBackend:
    if not image.is_file():
        raise UsageError(f"--disk-image {image}: no such file")
    backend = FileSlotBackend(image, config.state_dir, on_reboot=on_reboot)
    if not backend.powered_on or backend.reboot_requested:
        # `wellcar agent run` on a node that is off, or that asked for a reboot, is the
        # machine coming up: gptprio picks the slot.
        boot = backend.power_on()
        log.info("simulated power-on image=%s slot=%s", image, boot.slot.value)
    return backend


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
) -> None:
    """Run the agent: assess the boot, then check, install and reboot on schedule."""
    configure_logging(log_level.value)
    # The simulated machine does not go down by itself when asked to reboot: the agent
    # ends instead, and the next `wellcar agent run` powers the node on again.
    on_reboot = _RebootHook()
    with agent_errors():
        config = load_config(root, brand)
        keys = trusted_keys_from(config, allow_unsigned)  # before anything is touched
        backend: SlotBackend
        if disk_image is not None:
            simulated = _simulated_node(config, disk_image, on_reboot)
            backend, identity = simulated, _simulated_identity(config, simulated)
        else:
            backend = BlockDeviceSlotBackend(state_dir=config.state_dir, brand=config.brand)
            identity = load_node_identity(config)
        parts = build_parts(
            config, identity, backend, trusted_keys=keys, allow_unsigned=allow_unsigned
        )
        service = AgentService(UpdateAgent(parts))
        on_reboot.target = service.request_stop
        service.start()
    agent = service.agent
    log.info(
        "agent started pid=%d version=%s server=%s group=%s strategy=%s node=%s socket=%s",
        os.getpid(), agent.running_version(), config.server, config.group,
        config.reboot_strategy.value, disk_image or "this machine", service.control.path,
    )  # fmt: skip
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        signals.append(signum)
        if len(signals) == 1:
            log.info("signal=%s: stopping after the current step", name)
            service.request_stop()
            return
        state = agent.status().state
        log.warning(
            "signal=%s again: exiting now in state=%s (the next start resumes)", name, state
        )
        service.control.close()
        logging.shutdown()
        os._exit(128 + signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not service.join(0.5):
            pass
    finally:
        service.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if service.error is not None:
        fail(f"the update loop stopped: {service.error}")
    if agent.rebooting:
        log.info("agent stopped: the node is rebooting")
    else:
        log.info("agent stopped")


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


if __name__ == "__main__":  # `python -m wellcar.cli.agent_commands`: without the other groups
    agent_app(prog_name="wellcar agent")
