"""Assembling disk.img: the GPT from wellcar.disk, then each partition's content.

Partition contents are built as separate files and copied into the image at the offsets
the GPT gives, with plain file writes (no loop devices, no root needed for this step).
All-zero chunks are skipped, so the image stays sparse where partitions are empty.

USR-A holds ``usr.img``: erofs followed directly by its hash tree. The hash area starts at
``data_size`` bytes, a multiple of 4096, and that offset goes on the kernel command line
(``verity.usroffset=``) next to the root hash. USR-B stays empty.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from wellcar.disk import (
    USR_A_UUID,
    DiskError,
    DiskLayout,
    Slot,
    UsrVerity,
    create_disk_image,
    slot_partition,
)

from .bios_boot import install_bios_boot
from .errors import ImageBuildError, ImageContentError
from .esp import SlotBoot, build_esp
from .filesystems import clamp_mtimes, make_ext4
from .settings import BuildSettings
from .tools import run_tool
from .usr_image import UsrImage

_CHUNK = 1 << 20
# Top-level directories of ROOT besides the copied /etc, /var, /home and /root: mount
# points and the merged-/usr links (/bin -> usr/bin, ...) that Debian keeps in the root.
_ROOT_TREES = ("etc", "var", "home", "root")
_MOUNT_POINTS = ("usr", "proc", "sys", "dev", "run", "tmp", "mnt", "opt", "srv", "media",
                 "boot", "oem")  # fmt: skip


@dataclass(frozen=True)
class DiskResult:
    path: Path
    boot: SlotBoot
    layout: DiskLayout


def write_at(disk: Path, offset: int, source: Path, limit: int, what: str) -> None:
    """Copy ``source`` into ``disk`` at ``offset``; it must fit in ``limit`` bytes."""
    size = source.stat().st_size
    if size > limit:
        raise ImageContentError(
            "disk", f"{what} ({size} bytes) does not fit its partition ({limit} bytes)"
        )
    with source.open("rb") as src, disk.open("r+b") as dst:
        position = offset
        while chunk := src.read(_CHUNK):
            if chunk.count(0) != len(chunk):  # zeros stay holes of the sparse image
                dst.seek(position)
                dst.write(chunk)
            position += len(chunk)


def stage_root_tree(rootfs: Path, staging: Path, epoch: int, log: Path | None) -> Path:
    """The content of ROOT: /etc, /var, /home, /root with owners and modes (``cp -a``),
    the merged-/usr links, and empty mount points."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name in _ROOT_TREES:
        if (rootfs / name).exists():
            run_tool("root-fs", ["cp", "-a", str(rootfs / name), str(staging / name)], log=log)
    for entry in sorted(rootfs.iterdir()):
        if entry.is_symlink() and not (staging / entry.name).exists():
            (staging / entry.name).symlink_to(entry.readlink())
    for name in _MOUNT_POINTS:
        (staging / name).mkdir(exist_ok=True)
    (staging / "tmp").chmod(0o1777)
    clamp_mtimes(staging, epoch)
    return staging


def assemble_disk(
    settings: BuildSettings,
    usr: UsrImage,
    root_tree: Path,
    kernel: Path,
    initrd: Path | None,
    *,
    out: Path,
    work: Path,
    log: Path | None = None,
) -> DiskResult:
    layout = DiskLayout(
        esp_size=settings.esp_size, usr_size=settings.usr_size, root_size=settings.root_size
    )
    epoch = settings.epoch
    try:
        gpt = create_disk_image(out, layout, seed=settings.seed("disk"), overwrite=True)
        usr_a = slot_partition(gpt, Slot.A)
        esp_part, oem_part = gpt.partition(1), gpt.partition_labelled("OEM")
        bios_part = gpt.partition_labelled("BIOS-BOOT")
        root_part = gpt.partition_labelled("ROOT")
    except DiskError as exc:
        raise ImageBuildError("disk", str(exc)) from exc
    if usr.total_size > usr_a.byte_size:
        raise ImageContentError(
            "disk",
            f"/usr image and hash tree ({usr.total_size} bytes) do not fit USR-A "
            f"({usr_a.byte_size} bytes); raise usr-size",
        )
    boot = SlotBoot(Slot.A, kernel, initrd, USR_A_UUID, UsrVerity(usr.root_hash, usr.data_size))
    work.mkdir(parents=True, exist_ok=True)
    esp_img = work / "esp.img"
    build_esp(esp_img, esp_part.byte_size, settings, [boot], work=work, log=log)
    root_img, oem_img = work / "root.img", work / "oem.img"
    make_ext4(root_img, root_part.byte_size, label="ROOT", fs_uuid=settings.derived_uuid("root"),
              epoch=epoch, source=root_tree, log=log)  # fmt: skip
    make_ext4(oem_img, oem_part.byte_size, label="OEM", fs_uuid=settings.derived_uuid("oem"),
              epoch=epoch, source=None, log=log)  # fmt: skip
    write_at(out, esp_part.byte_offset, esp_img, esp_part.byte_size, "the ESP")
    write_at(out, usr_a.byte_offset, usr.image, usr_a.byte_size, "usr.img")
    write_at(out, root_part.byte_offset, root_img, root_part.byte_size, "ROOT")
    write_at(out, oem_part.byte_offset, oem_img, oem_part.byte_size, "OEM")
    for part_img in (esp_img, root_img, oem_img):
        part_img.unlink()
    # The same image boots on BIOS machines: GRUB in BIOS-BOOT and the MBR (docs/bios.md).
    install_bios_boot(out, bios_part.first_lba, bios_part.byte_size, work=work, log=log)
    return DiskResult(out, boot, layout)
