"""``-s``: the smallest unused disk, as flatcar-install picks it (from ``lsblk``).

Unused: a whole disk (lsblk TYPE ``disk``), writable, not removable-and-empty, with no
partitions, holders or mount points, and not a disk the running system lives on. The
chosen disk still goes through every check of :func:`wellcar.install.target.check_target`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wellcar.install.errors import TargetError
from wellcar.install.target import running_disks

LSBLK = ["lsblk", "--json", "--bytes", "--output", "NAME,PATH,SIZE,TYPE,RO,MOUNTPOINT"]


@dataclass(frozen=True)
class DiskEntry:
    name: str
    path: str
    size: int
    unused: bool
    why: str  # why not, when not unused


def _entries(document: dict[str, Any], running: set[str]) -> list[DiskEntry]:
    entries: list[DiskEntry] = []
    for device in document.get("blockdevices", []):
        if device.get("type") != "disk":
            continue
        name = str(device.get("name"))
        size = int(device.get("size") or 0)
        why = ""
        if name in running:
            why = "the running system is on it"
        elif device.get("ro") in (True, "1", 1):
            why = "read-only"
        elif size == 0:
            why = "no medium"
        elif device.get("children"):
            why = "has partitions or holders"
        elif device.get("mountpoint"):
            why = f"mounted at {device['mountpoint']}"
        entries.append(DiskEntry(name, str(device.get("path") or f"/dev/{name}"), size,
                                 not why, why))  # fmt: skip
    return entries


def choose_smallest(document: dict[str, Any], running: set[str]) -> Path:
    """The smallest unused disk of an ``lsblk --json --bytes`` document."""
    entries = _entries(document, running)
    unused = sorted((e for e in entries if e.unused), key=lambda e: (e.size, e.name))
    if not unused:
        seen = "; ".join(f"{e.name}: {e.why}" for e in entries) or "lsblk lists no disks"
        raise TargetError(f"-s found no unused disk ({seen}); name one with -d")
    return Path(unused[0].path)


def smallest_unused_disk() -> Path:
    try:
        done = subprocess.run(LSBLK, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        raise TargetError("-s needs lsblk (util-linux); name the disk with -d") from None
    if done.returncode != 0:
        raise TargetError(f"lsblk failed: {done.stderr.strip()[-200:]}; name the disk with -d")
    return choose_smallest(json.loads(done.stdout), set(running_disks()))
