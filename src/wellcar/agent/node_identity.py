"""Who this node is, as Omaha requests say it: machine id, boot id, OEM release."""

from __future__ import annotations

import logging
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wellcar.logline import log_fields

from .conf_file import parse_conf_text
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import AgentConfig

__all__ = [
    "BOOT_ID_PATH",
    "MACHINE_ID_PATH",
    "OEM_RELEASE_PATHS",
    "NodeIdentity",
    "in_root",
    "load_identity",
]

log = logging.getLogger(__name__)


def in_root(root: Path, absolute: str) -> Path:
    """``absolute`` (a path on the node) under ``root`` (``/`` on the node, a temporary
    directory in tests)."""
    return root / absolute.lstrip("/")


_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
_BOOT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OEM_RELEASE_PATHS = ("/usr/share/oem/oem-release", "/oem/oem-release")
MACHINE_ID_PATH = "/etc/machine-id"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is, as Omaha requests say it. Construct directly in tests."""

    version: str
    board: str
    machine_id: str  # 32 hex digits, no braces (update_engine sends it so)
    boot_id: str  # the kernel's boot_id, a dashed UUID; requests wrap it in {}
    oem_id: str = ""
    oem_version: str = ""
    arch: str = field(default_factory=platform.machine)  # uname -m, for os@sp


def _read_small(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(4096).decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None


def _read_oem(root: Path) -> tuple[str, str]:
    for shown in OEM_RELEASE_PATHS:
        text = _read_small(in_root(root, shown))
        if text is None:
            continue
        try:
            entries = {e.key: e.value for e in parse_conf_text(text, shown)}
        except ConfigError as exc:
            # The OEM file belongs to the platform image; a broken one must not
            # stop updates (which may well be what fixes it).
            log.warning("ignoring unreadable OEM release file", extra=log_fields(error=exc))
            return "", ""
        return entries.get("ID", ""), entries.get("VERSION_ID", "")
    return "", ""


def load_identity(
    config: AgentConfig, root: Path | None = None, *, arch: str | None = None
) -> NodeIdentity:
    """Read machine id, boot id and OEM release under ``root`` (default
    ``config.root``). A missing or malformed machine id or boot id is a
    ConfigError: the server keys instances on them."""
    base = config.root if root is None else root
    machine_id = (_read_small(in_root(base, MACHINE_ID_PATH)) or "").strip().lower()
    if not _MACHINE_ID.fullmatch(machine_id):
        raise ConfigError("missing or not 32 hex digits", path=MACHINE_ID_PATH)
    boot_id = (_read_small(in_root(base, BOOT_ID_PATH)) or "").strip().lower()
    if not _BOOT_ID.fullmatch(boot_id):
        raise ConfigError("missing or not a UUID", path=BOOT_ID_PATH)
    oem_id, oem_version = _read_oem(base)
    return NodeIdentity(
        version=config.version,
        board=config.board,
        machine_id=machine_id,
        boot_id=boot_id,
        oem_id=oem_id,
        oem_version=oem_version,
        arch=arch if arch is not None else platform.machine(),
    )
