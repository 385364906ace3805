"""Running the agent as the node's daemon: config, backend, control socket, signals.

``run_agent`` is what ``wellcar agent run`` and the lean ``python -m wellcar.agent run``
(the systemd unit's command) both do. It imports nothing of the CLI (typer, rich), so
the daemon's memory holds only the agent.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from wellcar.agent.assemble import build_parts, required_keys
from wellcar.agent.block_device_backend import BlockDeviceSlotBackend
from wellcar.agent.config import AgentConfig, load_config
from wellcar.agent.control import AgentService, ControlError
from wellcar.agent.daemon import AgentParts, UpdateAgent
from wellcar.agent.errors import AgentError
from wellcar.agent.live_backend import LiveSystemBackend, is_live_system
from wellcar.agent.node_identity import MACHINE_ID_PATH, NodeIdentity
from wellcar.agent.node_identity import load_identity as load_node_identity
from wellcar.agent.simulated_node import FileSlotBackend
from wellcar.agent.slot_backend import SlotBackend, SlotBackendError
from wellcar.agent.supervisor import FatalStartError, StartupGate
from wellcar.disk import DiskError, read_gpt
from wellcar.logline import LOG_FORMATS, LOG_LEVELS, configure_logging, log_fields

log = logging.getLogger("wellcar.agent.run")

_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


class RunError(FatalStartError):
    """The agent cannot start (a command-line mistake) or its loop died; the message says
    why."""


def agent_log_identifier(brand: str) -> str:
    """SYSLOG_IDENTIFIER of the agent's journal entries: its unit's name (brand-agent)."""
    return f"{brand}-agent"


def simulated_identity(config: AgentConfig, backend: FileSlotBackend) -> NodeIdentity:
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


class RebootHook:
    """FileSlotBackend's on_reboot, pointed at the service once that exists."""

    def __init__(self) -> None:
        self.target: Callable[[], None] | None = None

    def __call__(self) -> None:
        if self.target is not None:
            self.target()


def simulated_node(config: AgentConfig, image: Path, on_reboot: RebootHook) -> FileSlotBackend:
    if not image.is_file():
        raise RunError(f"--disk-image {image}: no such file")
    backend = FileSlotBackend(image, config.state_dir, on_reboot=on_reboot)
    if not backend.powered_on or backend.reboot_requested:
        # Starting the agent on a node that is off, or that asked for a reboot, is the
        # machine coming up: gptprio picks the slot.
        boot = backend.power_on()
        log.info("simulated power-on", extra=log_fields(image=image, slot=boot.slot.value))
    return backend


def run_agent(
    root: Path = Path("/"),
    brand: str = "wellcar",
    disk_image: Path | None = None,
    allow_unsigned: bool = False,
    log_level: str = "info",
    log_format: str = "logfmt",
) -> None:
    """Run until stopped (SIGTERM/SIGINT) or until the node reboots."""
    # Under systemd the lines go to the journal with their fields and priority.
    configure_logging(log_level, log_format, identifier=agent_log_identifier(brand))
    # The simulated machine does not go down by itself when asked to reboot: the agent
    # ends instead, and the next start powers the node on again.
    on_reboot = RebootHook()

    def assemble() -> tuple[AgentConfig, AgentParts]:
        config = load_config(root, brand)
        keys = required_keys(config, allow_unsigned)  # before anything is touched
        backend: SlotBackend
        if disk_image is not None:
            simulated = simulated_node(config, disk_image, on_reboot)
            backend, identity = simulated, simulated_identity(config, simulated)
        else:
            if is_live_system(root):
                backend = LiveSystemBackend(root)
            else:
                backend = BlockDeviceSlotBackend(state_dir=config.state_dir, brand=config.brand)
            identity = load_node_identity(config)
        parts = build_parts(
            config, identity, backend, trusted_keys=keys, allow_unsigned=allow_unsigned
        )
        return config, parts

    # A configuration the agent cannot act on waits here (blocked, with backoff) instead
    # of ending the process: systemd would restart it for ever (see supervisor.py).
    ready = StartupGate(root, brand).wait_until_ready(assemble)
    if ready is None:
        return
    config, parts = ready
    service = AgentService(UpdateAgent(parts))
    on_reboot.target = service.request_stop
    agent = service.agent
    # Handlers before the control socket exists: a SIGTERM as soon as the socket answers
    # (systemd stopping a freshly started agent) stops it cleanly too.
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        signals.append(signum)
        if len(signals) == 1:
            log.info("stopping after the current step", extra=log_fields(signal=name))
            service.request_stop()
            return
        state = agent.status().state
        log.warning(
            "signal again: exiting now (the next start resumes)",
            extra=log_fields(signal=name, state=state),
        )
        service.control.close()
        logging.shutdown()
        os._exit(128 + signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        log.info(
            "agent started",
            extra=log_fields(
                pid=os.getpid(),
                version=agent.running_version(),
                server=config.server,
                group=config.group,
                strategy=config.reboot_strategy.value,
                node=disk_image or ("this live system" if parts.live else "this machine"),
                socket=service.control.path,
            ),
        )
        if parts.trust is not None:
            parts.trust.log_mode()
        while not service.join(0.5):
            pass
    finally:
        service.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if service.error is not None:
        raise RunError(f"the update loop stopped: {service.error}")
    if agent.rebooting:
        log.info("agent stopped: the node is rebooting")
    else:
        log.info("agent stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wellcar.agent run [--root R] [--brand B] [--disk-image IMG] ...``"""
    parser = argparse.ArgumentParser(prog="python -m wellcar.agent")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the update agent")
    run.add_argument("--root", type=Path, default=Path("/"))
    run.add_argument("--brand", default="wellcar")
    run.add_argument("--disk-image", type=Path)
    run.add_argument("--allow-unsigned", action="store_true")
    run.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    run.add_argument("--log-format", choices=LOG_FORMATS, default="logfmt")
    args = parser.parse_args(argv)
    try:
        run_agent(
            args.root,
            args.brand,
            args.disk_image,
            args.allow_unsigned,
            args.log_level,
            args.log_format,
        )
    except (AgentError, ControlError, DiskError, SlotBackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or 'I/O'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
