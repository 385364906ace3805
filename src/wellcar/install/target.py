"""The disk the image goes to: what may be written, and the refusals (Linux sysfs/procfs).

A target must be a whole disk (not a partition), writable, not mounted, swapped on or
held by device-mapper/md/loop, and not a disk the running system (``/``, ``/usr``,
``/boot``, the installer's own files) lives on. The kernel has the last word: the
device is opened with ``O_EXCL``, which fails while anything holds it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from wellcar.install.errors import TargetError

SYS_DEV_BLOCK = Path("/sys/dev/block")
MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")
# What a running system lives on: the target may be none of these disks.
RUNNING_PATHS = ("/", "/usr", "/boot", "/oem")


@dataclass(frozen=True)
class Target:
    path: Path
    size: int
    is_block: bool


def _dev_name(dev: int) -> str:
    return f"{os.major(dev)}:{os.minor(dev)}"


def _sys_dir(dev: int) -> Path | None:
    path = SYS_DEV_BLOCK / _dev_name(dev)
    return path.resolve() if path.exists() else None


def whole_disks(dev: int) -> set[str]:
    """The sysfs names of the whole disks under device ``dev``: a partition's disk, a
    device-mapper or md device's members (recursively), the device itself otherwise."""
    found: set[str] = set()
    start = _sys_dir(dev)
    if start is None:
        return found
    todo, seen = [start], set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        slaves = node / "slaves"
        members = list(slaves.iterdir()) if slaves.is_dir() else []
        if members:
            todo += [member.resolve() for member in members]
        elif (node / "partition").exists():
            found.add(node.parent.name)
        else:
            found.add(node.name)
    return found


def _mounted_devices() -> list[tuple[int, str]]:
    """(device number, mount point) of every mount, from mountinfo."""
    mounts: list[tuple[int, str]] = []
    try:
        text = MOUNTINFO.read_text()
    except OSError:
        return mounts
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        major, _, minor = fields[2].partition(":")
        if major.isdigit() and minor.isdigit():
            point = fields[4].encode().decode("unicode_escape")
            mounts.append((os.makedev(int(major), int(minor)), point))
    return mounts


def _swap_devices() -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    try:
        lines = SWAPS.read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        name = line.split()[0] if line.split() else ""
        try:
            mode = os.stat(name)
        except OSError:
            continue
        if stat.S_ISBLK(mode.st_mode):
            found.append((mode.st_rdev, name))
    return found


def _holders(disk: Path) -> list[str]:
    """Device-mapper, md or loop devices built on the disk or one of its partitions."""
    names: list[str] = []
    for node in [disk, *(p for p in disk.iterdir() if (p / "partition").exists())]:
        holders = node / "holders"
        if holders.is_dir():
            names += [h.name for h in holders.iterdir()]
    return names


def running_disks(extra_paths: tuple[Path, ...] = ()) -> dict[str, str]:
    """Disk name -> what of the running system lives on it."""
    disks: dict[str, str] = {}
    for shown in (*RUNNING_PATHS, *map(str, extra_paths)):
        try:
            dev = os.stat(shown).st_dev
        except OSError:
            continue
        for disk in whole_disks(dev):
            disks.setdefault(disk, shown)
    return disks


def check_target(path: Path, *, installer_paths: tuple[Path, ...] = ()) -> Target:
    """Everything that can be said about the target before a byte is read from the
    source; raises TargetError with one line. ``installer_paths``: files the install
    reads (the image file, the config), whose disks are refused too."""
    try:
        mode = os.stat(path)
    except FileNotFoundError:
        raise TargetError(f"{path}: no such device; `lsblk` lists the disks") from None
    except OSError as exc:
        raise TargetError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISBLK(mode.st_mode):
        raise TargetError(
            f"{path} is not a block device: give a whole disk such as /dev/sda or "
            "/dev/nvme0n1 (`lsblk` lists them)"
        )
    node = _sys_dir(mode.st_rdev)
    if node is None:
        raise TargetError(f"{path}: the kernel does not know this device (no {SYS_DEV_BLOCK})")
    if (node / "partition").exists():
        raise TargetError(
            f"{path} is a partition of /dev/{node.parent.name}: give the whole disk "
            f"(/dev/{node.parent.name}); the image brings its own partitions"
        )
    name = node.name
    if (node / "ro").is_file() and (node / "ro").read_text().strip() == "1":
        raise TargetError(f"{path} is read-only")
    for dev, point in _mounted_devices():
        if name in whole_disks(dev):
            running = point in RUNNING_PATHS
            raise TargetError(
                f"{path} holds {point}"
                + (
                    ", the system the installer runs from: install from a live system "
                    "(the live ISO) or onto another disk"
                    if running
                    else f" (mounted): unmount it first (`umount {point}`)"
                )
            )
    for dev, swap in _swap_devices():
        if name in whole_disks(dev):
            raise TargetError(f"{path} holds swap {swap}: `swapoff {swap}` first")
    for disk, shown in running_disks(installer_paths).items():
        if disk == name:
            raise TargetError(
                f"{path} holds {shown}, which this install runs from or reads: install "
                "from another disk"
            )
    holders = _holders(node)
    if holders:
        raise TargetError(
            f"{path} is in use by {', '.join(sorted(holders))} (device-mapper, RAID or "
            "loop): stop those first"
        )
    size = int((node / "size").read_text()) * 512
    if size == 0:
        raise TargetError(f"{path} has no medium (size 0)")
    return Target(path, size, True)


def open_exclusive(target: Target) -> int:
    """A read-write descriptor; for a block device exclusive (``O_EXCL``: the kernel
    refuses while a filesystem, swap or device-mapper holds it)."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_EXCL if target.is_block else 0)
    try:
        return os.open(target.path, flags)
    except OSError as exc:
        if exc.errno == 16:  # EBUSY
            raise TargetError(f"{target.path} is in use (the kernel says busy)") from None
        raise TargetError(f"{target.path}: cannot open for writing: {exc.strerror}") from None


def file_target(path: Path) -> Target:
    """A regular file as the target (tests, making a disk image): no device checks."""
    return Target(path, path.stat().st_size, False)
