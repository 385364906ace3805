"""The agent's status as the node's commands show it: ``wellcar agent status``,
``update_engine_client -status`` and ``locksmithctl status`` all read it here.

The status comes from the running agent's control socket when it answers; otherwise (no
agent, an agent that is blocked on its configuration, or a caller without root: the socket
is root's) from the persisted ``STATE_DIR/status.json`` (mode 0644) and the lock file that
names the agent's pid. Only the slot table needs root without a running agent (it reads
the disk); it is then reported unavailable and everything else is still shown.

Standard library and the agent's own modules only: this runs on the node's python3.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from wellcar.agent.block_device_backend import BlockDeviceSlotBackend
from wellcar.agent.config import AgentConfig, default_state_dir, load_config
from wellcar.agent.control import (
    AgentNotRunningError,
    ControlError,
    agent_pid,
    read_slots,
    request,
    socket_path,
    status_document,
)
from wellcar.agent.errors import ConfigError
from wellcar.agent.simulated_node import FileSlotBackend
from wellcar.agent.state import UpdateState, update_engine_operation
from wellcar.agent.status_store import StatusStore
from wellcar.disk import SlotInfo, SlotTable
from wellcar.logline.encode import visible

__all__ = [
    "UPDATE_ENGINE_KEYS",
    "config_for_status",
    "read_document",
    "slot_table_lines",
    "status_lines",
    "update_engine_lines",
]

# update_engine_client -status prints exactly these, in this order.
UPDATE_ENGINE_KEYS = ("LAST_CHECKED_TIME", "PROGRESS", "CURRENT_OP", "NEW_VERSION", "NEW_SIZE")


def config_for_status(root: Path, brand: str) -> tuple[AgentConfig, str | None]:
    """update.conf as the agent reads it; when it cannot be read, the defaults (so the
    status saved by a blocked agent can still be shown) and the reason."""
    try:
        return load_config(root, brand), None
    except ConfigError as exc:
        fallback = AgentConfig(root=root, brand=brand, state_dir=default_state_dir(root, brand))
        return fallback, " ".join(str(exc).split())


def _read_only_slots(
    config: AgentConfig, image: Path | None
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The slot table as the agent would see it, without writing anything."""
    if image is not None:
        if not image.is_file():
            return None, f"--disk-image {image}: no such file"
        node = FileSlotBackend(image, config.state_dir)

        def slots() -> tuple[SlotInfo, SlotInfo]:
            if node.powered_on:
                return node.slot_table().slots()
            return SlotTable.for_image(image, node.status_path).slots()

        return read_slots(slots)
    machine = BlockDeviceSlotBackend(state_dir=config.state_dir, brand=config.brand)
    return read_slots(lambda: machine.slot_table().slots())  # reading never writes


def _saved_document(
    config: AgentConfig, image: Path | None, *, slots: bool, why: str | None
) -> dict[str, Any]:
    status = StatusStore(config.status_path).load()
    pid = agent_pid(config.state_dir)
    daemon: dict[str, Any] = {"running": pid is not None}
    if pid is not None:
        daemon["pid"] = pid
    if why:
        daemon["not_answering"] = why
    rows, error = _read_only_slots(config, image) if slots else (None, None)
    return status_document(status, config, daemon=daemon, slots=rows, slots_error=error)


def read_document(
    root: Path,
    brand: str,
    *,
    disk_image: Path | None = None,
    socket: Path | None = None,
    slots: bool = True,
) -> dict[str, Any]:
    """What ``wellcar agent status --json`` prints (see docs/agent.md), plus
    ``config_error`` when update.conf cannot be read."""
    config, config_error = config_for_status(root, brand)
    document: dict[str, Any] | None = None
    why: str | None = None
    if config_error is None:
        try:
            response = request(socket or socket_path(config), "status", timeout=5.0)
            document = {k: v for k, v in response.items() if k not in ("ok", "command")}
        except AgentNotRunningError:
            pass
        except ControlError as exc:  # e.g. not root: the socket is root's
            why = str(exc)
    if document is None:
        document = _saved_document(config, disk_image, slots=slots, why=why)
    document["config_error"] = config_error
    return document


def _epoch(stamp: str | None) -> int:
    return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0


def _one_line(value: object) -> str:
    # Error texts come from the update server: one line, no terminal control sequences,
    # so no server can add a KEY=VALUE line a script would read.
    return "" if value is None else visible(" ".join(str(value).split()))


def update_engine_lines(document: dict[str, Any]) -> list[str]:
    """update_engine_client -status's five lines, in its order and format."""
    status = document["status"]
    size = status["new_payload_size"]
    progress = status["downloaded_bytes"] / size if size else 0.0
    operation = update_engine_operation(
        UpdateState(status["state"]), blocked=status.get("blocked_reason") is not None
    )
    return [
        f"LAST_CHECKED_TIME={_epoch(status['last_check_time'])}",
        f"PROGRESS={progress:f}",
        f"CURRENT_OP={operation}",
        f"NEW_VERSION={status['new_version'] or '0.0.0'}",
        f"NEW_SIZE={size}",
    ]


def daemon_line(document: dict[str, Any]) -> str:
    daemon, status = document["daemon"], document["status"]
    if not daemon["running"]:
        return "DAEMON=not running (the state shown is the last one saved)"
    pid = daemon.get("pid") or "?"
    if "started_at" not in daemon and status.get("blocked_reason"):
        return f"DAEMON=blocked pid={pid}"
    return f"DAEMON=running pid={pid}"


def status_lines(document: dict[str, Any]) -> list[str]:
    """Every KEY=VALUE line of ``wellcar agent status``; the first five are
    update_engine_client's."""
    status, config = document["status"], document["config"]
    lines = update_engine_lines(document)
    lines += [
        f"CURRENT_VERSION={status['current_version'] or config['version']}",
        f"LAST_ERROR_CODE={_one_line(status['last_error_code'])}",
        f"LAST_ERROR={_one_line(status['last_error_message'])}",
    ]
    if status.get("blocked_reason"):
        lines.append(f"BLOCKED={_one_line(status['blocked_reason'])}")
    if document.get("config_error"):
        lines.append(f"CONFIG_ERROR={_one_line(document['config_error'])}")
    if status.get("next_check_time"):
        lines.append(f"NEXT_CHECK_TIME={_epoch(status['next_check_time'])}")
    if status["rolled_back_version"]:
        lines.append(f"ROLLED_BACK_VERSION={status['rolled_back_version']}")
    lines += [f"SERVER={config['server'] or 'disabled'}", f"GROUP={config['group']}"]
    if config.get("channel"):  # the operator switched channels (docs/trust.md)
        lines.append(f"CHANNEL={config['channel']}")
    lines.append(f"REBOOT_STRATEGY={config['reboot_strategy']}")
    lines.append(daemon_line(document))
    if document.get("boot"):
        lines.append(f"BOOT={document['boot']['outcome']}")
    if document.get("slots_error"):
        lines.append(f"SLOTS=unavailable: {_one_line(document['slots_error'])}")
    return lines


SLOT_COLUMNS = ("SLOT", "PART", "STATE", "PRIORITY", "TRIES", "SUCCESSFUL", "ROLE", "VERSION")


def slot_table_lines(document: dict[str, Any]) -> list[str]:
    """Both slots as an aligned table (plain text: the node has no table library)."""
    rows = [list(SLOT_COLUMNS)]
    for slot in document.get("slots") or ():
        rows.append(
            [
                slot["slot"],
                f"{slot['partition']} {slot['label']}",
                slot["state"],
                str(slot["priority"]),
                str(slot["tries"]),
                "yes" if slot["successful"] else "no",
                "running" if slot["active"] else "update target",
                slot["version"] or "-",
            ]
        )
    if len(rows) == 1:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(SLOT_COLUMNS))]
    return [" " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip
