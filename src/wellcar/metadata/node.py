"""Writing what the platform said onto the node, where Flatcar's afterburn writes it.

- attributes: ``/run/metadata/flatcar`` (``KEY=value`` lines, for ``EnvironmentFile=``),
  with ``/run/metadata/coreos`` linking to it for older units;
- ssh keys: ``~core/.ssh/authorized_keys.d/coreos-metadata``, merged into
  ``authorized_keys`` (which is what sshd reads), keys dropped by the platform removed;
- hostname: only when the node has none of its own (no ``/etc/hostname`` or
  ``localhost``): a hostname from the Ignition config wins, as on Flatcar.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from wellcar.atomic_file import write_file_atomically

from .model import Metadata

ATTRIBUTES_FILE = "/run/metadata/flatcar"
ATTRIBUTES_LINK = "/run/metadata/coreos"
SSH_KEYS_FRAGMENT = "coreos-metadata"  # Flatcar's coreos-metadata-sshkeys@ fragment name
SSH_USER = "core"
UNSET_HOSTNAMES = ("", "localhost", "localhost.localdomain")


@dataclass(frozen=True)
class NodeFiles:
    root: Path = Path("/")
    set_kernel_hostname: bool = True  # False in tests: sethostname needs the real node

    def at(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def render_attributes(attributes: dict[str, str]) -> str:
    # A value with a line break would become a second assignment in EnvironmentFile=.
    return "".join(
        f"{key}={value}\n"
        for key, value in sorted(attributes.items())
        if "\n" not in value and "\r" not in value
    )


def write_attributes(files: NodeFiles, metadata: Metadata) -> Path:
    path = files.at(ATTRIBUTES_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, render_attributes(metadata.attributes), mode=0o644)
    link = files.at(ATTRIBUTES_LINK)
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to(path.name)
    return path


def apply_hostname(files: NodeFiles, hostname: str | None) -> str | None:
    """The hostname set, or None when the node keeps its own (or none was given)."""
    if not hostname:
        return None
    name = hostname.strip().split()[0][:64] if hostname.strip() else ""
    etc = files.at("/etc/hostname")
    current = etc.read_text(encoding="utf-8").strip() if etc.is_file() else ""
    if not name or current not in UNSET_HOSTNAMES:
        return None
    write_file_atomically(etc, name + "\n", mode=0o644)
    if files.set_kernel_hostname:
        socket.sethostname(name)
    return name


def _account(files: NodeFiles, user: str) -> tuple[int, int, str] | None:
    """(uid, gid, home) of ``user`` from the node's /etc/passwd (under ``files.root``)."""
    passwd = files.at("/etc/passwd")
    for line in passwd.read_text(encoding="utf-8").splitlines() if passwd.is_file() else []:
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def apply_ssh_keys(files: NodeFiles, keys: tuple[str, ...], user: str = SSH_USER) -> Path | None:
    account = _account(files, user)
    if account is None:
        return None
    uid, gid, home_dir = account
    home = files.at(home_dir)
    ssh = home / ".ssh"
    fragments = ssh / "authorized_keys.d"
    fragments.mkdir(mode=0o700, parents=True, exist_ok=True)
    fragment = fragments / SSH_KEYS_FRAGMENT
    old = set(fragment.read_text().splitlines()) if fragment.is_file() else set()
    new = [k.strip() for k in keys if k.strip() and "\n" not in k.strip()]
    write_file_atomically(fragment, "".join(f"{k}\n" for k in new), mode=0o600)
    current = ssh / "authorized_keys"
    lines = current.read_text().splitlines() if current.is_file() else []
    kept = [line for line in lines if line not in old or line in new]
    merged = kept + [k for k in new if k not in kept]
    write_file_atomically(current, "".join(f"{line}\n" for line in merged), mode=0o600)
    if os.geteuid() == 0:
        for path in (ssh, fragments, fragment, current):
            os.chown(path, uid, gid)
    return current
