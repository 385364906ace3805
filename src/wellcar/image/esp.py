"""The EFI system partition: systemd-boot, one kernel + initrd + boot entry per slot.

systemd-boot instead of Flatcar's patched GRUB: with boot counting (``<entry>+3.conf``,
blessed after boot-complete.target) it gives automatic fallback with stock components.
BIOS machines boot GRUB instead (image/bios_boot.py), whose grub.cfg and grubenv are
rendered here from the same entries.
The image ships slot A only; an update adds ``vmlinuz-b``/``initrd-b`` and an entry for B.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from wellcar.disk import BootEntryError, Slot, UsrVerity
from wellcar.disk.boot_entries import (
    FALLBACK_LOADER,
    GRUB_CFG,
    GRUBENV,
    IMAGE_BASE_OPTIONS,
    LOADER_CONF,
    LOADER_ENTRIES,
    SYSTEMD_BOOT_LOADER,
    SlotEntry,
    boot_entry_file_name,
    esp_directories,
    parse_boot_entry,
    render_boot_entry,
    render_grub_cfg,
    render_grubenv,
    render_loader_conf,
    slot_boot_entry,
    slot_boot_files,
)

from .bios_boot import check_grub_script
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
    verity: UsrVerity


def render_entry(settings: BuildSettings, boot: SlotBoot) -> str:
    """The slot's entry, as the agent writes it for an update (wellcar.disk.boot_entries)."""
    entry = slot_boot_entry(
        brand=settings.brand.id,
        title=settings.brand.pretty_name,
        version=str(settings.version),
        slot=boot.slot,
        partuuid=boot.usr_partuuid,
        verity=boot.verity,
        base_options=IMAGE_BASE_OPTIONS,
        with_initrd=boot.initrd is not None,
    )
    return render_boot_entry(entry)


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
    fat_mkdirs(image, list(esp_directories(brand_id)), epoch=epoch, log=log)
    staging = work / "esp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    loader = staging / "systemd-bootx64.efi"
    shutil.copyfile(bootloader, loader)
    fat_copy(image, loader, FALLBACK_LOADER, epoch=epoch, log=log)
    fat_copy(image, loader, SYSTEMD_BOOT_LOADER, epoch=epoch, log=log)
    loader_conf = staging / "loader.conf"
    loader_conf.write_text(render_loader_conf(), encoding="utf-8")
    fat_copy(image, loader_conf, LOADER_CONF, epoch=epoch, log=log)
    slot_entries: list[SlotEntry] = []
    for boot in boots:
        files = slot_boot_files(brand_id, boot.slot)
        fat_copy(image, boot.kernel, files.kernel, epoch=epoch, log=log)
        if boot.initrd is not None:
            fat_copy(image, boot.initrd, files.initrd, epoch=epoch, log=log)
        try:
            text = render_entry(settings, boot)
        except BootEntryError as exc:
            raise ImageContentError("esp", str(exc)) from exc
        # Without a counter: the image's own slot is good from its first boot.
        entry = staging / boot_entry_file_name(brand_id, boot.slot)
        entry.write_text(text, encoding="utf-8")
        fat_copy(image, entry, f"{LOADER_ENTRIES}/{entry.name}", epoch=epoch, log=log)
        slot_entries.append(SlotEntry(boot.slot, entry.name, parse_boot_entry(text)))
    # GRUB's files, from the same entries; no counters (the image's slot is good).
    grub_cfg, grubenv = staging / "grub.cfg", staging / "grubenv"
    grub_cfg.write_text(render_grub_cfg(brand_id, slot_entries), encoding="utf-8")
    check_grub_script(grub_cfg, log=log)
    grubenv.write_bytes(render_grubenv({}))
    fat_copy(image, grub_cfg, GRUB_CFG, epoch=epoch, log=log)
    fat_copy(image, grubenv, GRUBENV, epoch=epoch, log=log)
