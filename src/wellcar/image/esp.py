"""The EFI system partition: systemd-boot, one kernel + initrd + boot entry per slot.

systemd-boot instead of Flatcar's patched GRUB: with boot counting (``<entry>+3.conf``,
blessed after boot-complete.target) it gives automatic fallback with stock components.
The image ships slot A only; an update adds ``vmlinuz-b``/``initrd-b`` and an entry for B.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from wellcar.disk import Slot

from .errors import ImageContentError
from .filesystems import fat_copy, fat_mkdirs, make_vfat
from .settings import BuildSettings

SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")


@dataclass(frozen=True)
class SlotBoot:
    """What one slot's boot entry needs."""

    slot: Slot
    kernel: Path
    initrd: Path | None
    usr_partuuid: UUID
    root_hash: str
    hash_offset: int  # bytes from the start of the partition to the verity hash area


def kernel_command_line(boot: SlotBoot) -> str:
    """Select the slot's /usr and its verity parameters, in the words the image's initrd
    reads (``verity.usr=``, ``verity.usrhash=`` as Flatcar's, plus ``verity.usroffset=``
    for the hash area inside the partition) and that the agent writes for the other slot.

    systemd's spellings (``usrhash=``, ``mount.usr=``) are left out on purpose: the
    booted system's systemd-veritysetup-generator would try to open the already open
    device again and fail a unit on every boot. ``panic=10`` makes the initrd reboot
    (and boot counting fall back) instead of waiting at a rescue shell.
    """
    usr = f"PARTUUID={boot.usr_partuuid}"
    return " ".join((
        f"verity.usr={usr}",
        f"verity.usrhash={boot.root_hash}",
        f"verity.usroffset={boot.hash_offset}",
        f"wellcar.slot={boot.slot.value.lower()}",
        "root=PARTLABEL=ROOT",
        "rootfstype=ext4",
        "rw",
        "console=ttyS0",
        "panic=10",
    ))  # fmt: skip


def slot_files(brand_id: str, slot: Slot) -> tuple[str, str]:
    letter = slot.value.lower()
    return f"EFI/{brand_id}/vmlinuz-{letter}", f"EFI/{brand_id}/initrd-{letter}"


def entry_name(brand_id: str, slot: Slot) -> str:
    return f"{brand_id}-{slot.value.lower()}.conf"


def render_entry(settings: BuildSettings, boot: SlotBoot) -> str:
    kernel, initrd = slot_files(settings.brand.id, boot.slot)
    lines = [
        f"title {settings.brand.pretty_name} {settings.version} ({boot.slot.label})",
        f"version {settings.version}",
        f"sort-key {settings.brand.id}",
        f"linux /{kernel}",
    ]
    if boot.initrd is not None:
        lines.append(f"initrd /{initrd}")
    lines.append(f"options {kernel_command_line(boot)}")
    return "\n".join(lines) + "\n"


def render_loader_conf() -> str:
    """No ``default``: systemd-boot then boots the first entry in its order (sort-key,
    then newest version first, entries out of tries last), which is what lets the agent
    switch slots by writing entries alone. No menu wait either; a key press shows it."""
    return "timeout 0\nconsole-mode keep\n"


def build_esp(
    image: Path,
    size: int,
    settings: BuildSettings,
    boots: list[SlotBoot],
    *,
    work: Path,
    log: Path | None,
    bootloader: Path = SYSTEMD_BOOT,
) -> None:
    """A FAT32 image file of ``size`` bytes with the bootloader and the slots' files."""
    if not bootloader.is_file():
        raise ImageContentError("esp", f"{bootloader} is missing (install systemd-boot-efi)")
    brand_id, epoch = settings.brand.id, settings.epoch
    volume_id = settings.derived_uuid("esp").hex[:8]
    make_vfat(image, size, label="EFI-SYSTEM", volume_id=volume_id, log=log)
    fat_mkdirs(
        image,
        ["EFI", "EFI/BOOT", "EFI/systemd", f"EFI/{brand_id}", "loader", "loader/entries"],
        epoch=epoch,
        log=log,
    )
    staging = work / "esp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    loader = staging / "systemd-bootx64.efi"
    shutil.copyfile(bootloader, loader)
    fat_copy(image, loader, "EFI/BOOT/BOOTX64.EFI", epoch=epoch, log=log)
    fat_copy(image, loader, "EFI/systemd/systemd-bootx64.efi", epoch=epoch, log=log)
    loader_conf = staging / "loader.conf"
    loader_conf.write_text(render_loader_conf(), encoding="utf-8")
    fat_copy(image, loader_conf, "loader/loader.conf", epoch=epoch, log=log)
    for boot in boots:
        kernel_path, initrd_path = slot_files(brand_id, boot.slot)
        fat_copy(image, boot.kernel, kernel_path, epoch=epoch, log=log)
        if boot.initrd is not None:
            fat_copy(image, boot.initrd, initrd_path, epoch=epoch, log=log)
        entry = staging / entry_name(brand_id, boot.slot)
        entry.write_text(render_entry(settings, boot), encoding="utf-8")
        fat_copy(image, entry, f"loader/entries/{entry.name}", epoch=epoch, log=log)
