"""After the tables are written: the backup GPT moved to the disk's real end, and checked.

The image's backup GPT sits at the end of the *image*; on a larger disk the firmware and
every tool expect it in the disk's last sector. Debian's ``sgdisk -e`` moves it there
(and updates the primary header's backup and last-usable LBAs), as the image's
first-boot growpart would too; ROOT itself is left to grow on first boot (the image's
grow-root unit). The result is read back with wellcar.disk's own GPT reader: both
copies valid, the backup in the last sector, the image's partitions unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from wellcar.disk.errors import DiskError
from wellcar.disk.gpt_image import GptDisk, read_gpt
from wellcar.disk.sizes import SECTOR_SIZE
from wellcar.install.errors import PlacementError
from wellcar.install.image_geometry import ImageGeometry


def move_backup_gpt(target: Path, target_size: int, geometry: ImageGeometry) -> GptDisk:
    if target_size > geometry.size:
        try:
            done = subprocess.run(
                ["sgdisk", "-e", str(target)],
                capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
        except FileNotFoundError:
            raise PlacementError(
                "sgdisk is missing (apt-get install gdisk): the backup GPT could not be moved "
                "to the end of the disk"
            ) from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-200:]
            raise PlacementError(f"sgdisk -e {target} failed: {said}")
    try:
        disk = read_gpt(target)
    except DiskError as exc:
        raise PlacementError(f"the installed partition table does not read back: {exc}") from None
    last_lba = target_size // SECTOR_SIZE - 1
    if disk.needs_repair or disk.header.backup_lba != last_lba:
        problem = (
            disk.primary_problem
            or disk.backup_problem
            or (f"backup at LBA {disk.header.backup_lba}, the disk's last is {last_lba}")
        )
        raise PlacementError(f"the installed GPT of {target} is not whole: {problem}")
    placed = {(p.number, p.first_lba, p.last_lba, p.label) for p in disk.partitions}
    wanted = {(p.number, p.first_lba, p.last_lba, p.label) for p in geometry.partitions}
    if placed != wanted:
        raise PlacementError(f"the installed partition table of {target} is not the image's")
    return disk


def tell_the_kernel(target: Path) -> None:
    """Best effort: make the kernel (and udev) see the new partitions. A loop device
    without partition scanning says no; that is not the install's concern."""
    for argv in (["partx", "--update", str(target)], ["blockdev", "--rereadpt", str(target)]):
        try:
            if subprocess.run(argv, capture_output=True, check=False, timeout=60).returncode == 0:
                return
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
