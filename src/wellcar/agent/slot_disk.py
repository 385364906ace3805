"""Finding the node's slot disk and talking to it: ``lsblk``, udev's by-partlabel links,
the GPT on the whole-disk device, and the commands the block backend runs."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from uuid import UUID

from wellcar.disk import ImageFileGpt, Slot

from .slot_backend import CommandFailedError, SlotDiskNotFoundError


def _lsblk_devices(node: object, parent: str | None) -> Iterator[tuple[dict[str, object], str]]:
    """Every device of an lsblk JSON tree (or list), with its parent disk's name."""
    if not isinstance(node, dict):
        return
    name = node.get("name")
    if isinstance(name, str):
        pkname = node.get("pkname")
        yield node, pkname if isinstance(pkname, str) and pkname else (parent or "")
    children = node.get("children")
    if isinstance(children, list):
        for child in children:
            yield from _lsblk_devices(child, name if isinstance(name, str) else parent)


def slot_disk_from_lsblk(lsblk_json: str, booted_partuuid: UUID | None = None) -> str:
    """The name (``vda``) of the whole disk holding both USR-A and USR-B.

    ``lsblk_json`` is ``lsblk -J [-l] -o NAME,PKNAME,PARTLABEL,PARTUUID`` output, as a list
    or as a tree. With several such disks (a second Flatcar-style disk plugged in), the one
    holding ``booted_partuuid`` wins: that is the disk we booted from.
    """
    try:
        document = json.loads(lsblk_json)
    except json.JSONDecodeError as exc:
        raise SlotDiskNotFoundError(f"lsblk output is not JSON ({exc.msg})") from exc
    devices = document.get("blockdevices") if isinstance(document, dict) else None
    if not isinstance(devices, list):
        raise SlotDiskNotFoundError("lsblk output has no 'blockdevices' list")
    labels: dict[str, set[str]] = {}
    partuuids: dict[str, set[UUID]] = {}
    for top in devices:
        for device, disk in _lsblk_devices(top, None):
            label = device.get("partlabel")
            if label not in (Slot.A.label, Slot.B.label) or not disk:
                continue
            labels.setdefault(disk, set()).add(str(label))
            raw = device.get("partuuid")
            if isinstance(raw, str):
                with suppress(ValueError):
                    partuuids.setdefault(disk, set()).add(UUID(raw))
    candidates = sorted(disk for disk, found in labels.items() if len(found) == 2)
    if booted_partuuid is not None:
        booted = [disk for disk in candidates if booted_partuuid in partuuids.get(disk, set())]
        candidates = booted or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise SlotDiskNotFoundError(
            "no disk has both a USR-A and a USR-B partition "
            f"(found: {', '.join(sorted(labels)) or 'none'})"
        )
    raise SlotDiskNotFoundError(
        f"several disks hold USR-A and USR-B ({', '.join(candidates)}) and the kernel command "
        "line does not say which one was booted: name the disk explicitly"
    )


def slot_disk_from_partlabel_links(
    dev: Path = Path("/dev"), sys_class_block: Path = Path("/sys/class/block")
) -> Path:
    """The whole-disk device behind udev's ``/dev/disk/by-partlabel/USR-A`` and ``USR-B``."""
    parents: dict[Slot, str] = {}
    for slot in Slot:
        link = dev / "disk" / "by-partlabel" / slot.label
        if not link.is_symlink():
            raise SlotDiskNotFoundError(f"{link} does not exist")
        partition_name = link.resolve().name
        # /sys/class/block/vda3 links into .../block/vda/vda3: the parent is the disk.
        parents[slot] = (sys_class_block / partition_name).resolve().parent.name
    if parents[Slot.A] != parents[Slot.B]:
        raise SlotDiskNotFoundError(
            f"USR-A is on {parents[Slot.A]} but USR-B is on {parents[Slot.B]}: "
            "the by-partlabel links belong to different disks"
        )
    return dev / parents[Slot.A]


# --------------------------------------------------------------- GPT on a block device


class BlockDeviceGpt(ImageFileGpt):
    """:class:`PartitionAttributeStore` over a whole-disk block device.

    ``wellcar.disk`` sizes a disk by seeking to its end, so the image-file store reads and
    writes ``/dev/sdX`` as it does ``disk.img``: primary copy preferred, backup when the
    primary is damaged, writes backup first then primary with an fsync after each (the
    order GRUB's gptprio uses), under the same advisory lock.
    """


# ------------------------------------------------------------------- running commands

CommandRunner = Callable[[Sequence[str]], str]


def run_command(argv: Sequence[str]) -> str:
    """Run ``argv`` and return its stdout; CommandFailedError when it cannot or fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandFailedError(f"{shlex.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise CommandFailedError(f"{shlex.join(argv)}: {detail[0]}")
    return done.stdout
