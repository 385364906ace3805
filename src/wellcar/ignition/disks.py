"""`storage.disks` and `storage.filesystems` on real devices (or image files): GPT changes
with sgdisk, filesystems with mkfs.*. The partition plan is computed from the current table
before anything is written; a filesystem's device may only appear after partitioning, so
its check runs just before it is made."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wellcar.ignition.errors import ApplyError, ConflictError
from wellcar.ignition.types import Disk, Filesystem, Partition

SECTORS_PER_MIB = 2048  # 512-byte logical sectors


@dataclass(frozen=True)
class ExistingPartition:
    number: int
    start: int  # sectors
    size: int  # sectors
    type_guid: str
    guid: str
    label: str


def run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ApplyError(f"{argv[0]} is not installed") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ApplyError(f"{' '.join(argv)} failed: {detail[-1] if detail else done.returncode}")
    return done.stdout


def read_partitions(device: Path) -> list[ExistingPartition]:
    done = subprocess.run(["sfdisk", "--json", str(device)], capture_output=True, text=True)
    if done.returncode != 0:
        return []  # no partition table yet
    table = json.loads(done.stdout).get("partitiontable", {})
    result = []
    for p in table.get("partitions", []):
        number = int(re.findall(r"(\d+)$", p["node"])[0])
        result.append(
            ExistingPartition(
                number, int(p["start"]), int(p["size"]), str(p.get("type", "")).lower(),
                str(p.get("uuid", "")).lower(), str(p.get("name", "")),
            )
        )  # fmt: skip
    return result


def _differences(want: Partition, have: ExistingPartition) -> list[str]:
    diffs = []
    if want.start_mib and want.start_mib * SECTORS_PER_MIB != have.start:
        diffs.append(f"start {have.start // SECTORS_PER_MIB} MiB")
    if want.size_mib and want.size_mib * SECTORS_PER_MIB != have.size:
        diffs.append(f"size {have.size // SECTORS_PER_MIB} MiB")
    if want.type_guid and want.type_guid.lower() != have.type_guid:
        diffs.append(f"type {have.type_guid}")
    if want.guid and want.guid.lower() != have.guid:
        diffs.append(f"guid {have.guid}")
    if want.label is not None and want.label != have.label:
        diffs.append(f"label {have.label!r}")
    return diffs


def plan_disk(disk: Disk, where: str) -> list[list[str]]:
    """The sgdisk commands that make disk's table match the config; raises on conflicts."""
    device = Path(disk.device)
    if not device.exists():
        raise ConflictError(f"{where}.device: {device} does not exist")
    existing = [] if disk.wipe_table else read_partitions(device)
    commands: list[list[str]] = []
    if disk.wipe_table:
        commands.append(["sgdisk", "--zap-all", str(device)])
    used = {p.number for p in existing}
    for j, want in enumerate(disk.partitions):
        pwhere = f"{where}.partitions[{j}]"
        have = next(
            (
                p
                for p in existing
                if (want.number and p.number == want.number)
                or (not want.number and want.label is not None and p.label == want.label)
            ),
            None,
        )
        if want.should_exist is False:
            if have is not None:
                commands.append(["sgdisk", f"--delete={have.number}", str(device)])
                used.discard(have.number)
            continue
        if have is not None:
            diffs = _differences(want, have)
            if not diffs:
                continue
            if not want.wipe_partition_entry:
                raise ConflictError(
                    f"{pwhere}: partition {have.number} exists with {', '.join(diffs)}; set "
                    "wipePartitionEntry: true to replace it"
                )
            commands.append(["sgdisk", f"--delete={have.number}", str(device)])
            number = have.number
        else:
            number = want.number or next(n for n in range(1, 129) if n not in used)
        used.add(number)
        start = want.start_mib * SECTORS_PER_MIB if want.start_mib else 0
        end = f"+{want.size_mib}M" if want.size_mib else "0"
        command = ["sgdisk", f"--new={number}:{start}:{end}"]
        if want.label is not None:
            command.append(f"--change-name={number}:{want.label}")
        if want.type_guid:
            command.append(f"--typecode={number}:{want.type_guid}")
        if want.guid:
            command.append(f"--partition-guid={number}:{want.guid}")
        commands.append([*command, str(device)])
    return commands


def apply_disk_commands(commands: list[list[str]]) -> None:
    for command in commands:
        run(command)
    devices = {c[-1] for c in commands}
    for device in devices:
        if Path(device).is_block_device():
            subprocess.run(["partx", "-u", device], capture_output=True, check=False)
            subprocess.run(["udevadm", "settle"], capture_output=True, check=False)


def probe(device: Path) -> dict[str, str]:
    done = subprocess.run(
        ["blkid", "-p", "-o", "export", str(device)], capture_output=True, text=True
    )
    values = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


def mkfs_command(fs: Filesystem) -> list[str]:
    label, uuid, device = fs.label, fs.uuid, fs.device
    options = list(fs.options)
    if fs.format == "ext4":
        argv = ["mkfs.ext4", "-F", "-q"] + (["-L", label] if label else [])
        argv += ["-U", uuid] if uuid else []
    elif fs.format == "btrfs":
        argv = ["mkfs.btrfs", "-f"] + (["-L", label] if label else [])
        argv += ["-U", uuid] if uuid else []
    elif fs.format == "xfs":
        argv = ["mkfs.xfs", "-f"] + (["-L", label] if label else [])
        argv += ["-m", f"uuid={uuid}"] if uuid else []
    elif fs.format == "vfat":
        argv = ["mkfs.vfat"] + (["-n", label] if label else [])
        argv += ["-i", uuid.replace("-", "")] if uuid else []
    elif fs.format == "swap":
        argv = ["mkswap", "-f"] + (["-L", label] if label else [])
        argv += ["-U", uuid] if uuid else []
    else:
        raise ApplyError(f"cannot make a {fs.format!r} filesystem")
    return [*argv, *options, device]


def make_filesystem(fs: Filesystem, where: str) -> None:
    """Create fs unless a matching one is there; refuse to wipe another without consent."""
    if fs.format in (None, "none"):
        return
    device = Path(fs.device)
    if not device.exists():
        raise ConflictError(f"{where}.device: {device} does not exist")
    found = probe(device)
    kind = found.get("TYPE")
    if not fs.wipe_filesystem and kind:
        matches = (
            kind == fs.format
            and (fs.label is None or found.get("LABEL") == fs.label)
            and (fs.uuid is None or found.get("UUID", "").lower() == fs.uuid.lower())
        )
        if matches:
            return  # Ignition reuses a filesystem that already is what the config asks
        raise ConflictError(
            f"{where}: {device} already holds a {kind} filesystem "
            f"(label {found.get('LABEL', '')!r}); set wipeFilesystem: true to replace it"
        )
    run(mkfs_command(fs))
