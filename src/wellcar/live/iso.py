"""The hybrid live ISO: an ESP image (systemd-boot, the kernel and the live initrds) that
is a file of the ISO 9660 tree, named both as the El Torito UEFI boot image (a CD) and as
a GPT partition of type ESP (a USB stick), so the same bytes boot both ways.

Inside the ISO 9660 volume rather than appended after it: El Torito cannot state a size
above 32 MiB, and OVMF then takes the image to end where the volume ends (docs/live.md).
The ESP carries ``live.json`` (brand, version, root hash, the customization archive's
path) and the customization archive itself, an initrd archive the boot entry always
loads (empty when built). ``iso customize`` replaces that file inside the FAT and writes
the ESP back at the same place: the ISO 9660 tree and El Torito catalog stay as built.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from wellcar.disk.boot_entries import BootEntry, render_boot_entry
from wellcar.image.errors import ImageBuildError
from wellcar.image.esp import SYSTEMD_BOOT
from wellcar.image.filesystems import fat_copy, fat_mkdirs, make_vfat
from wellcar.image.tools import run_tool

from .cmdline import live_kernel_command_line
from .cpio import cpio_bytes
from .errors import ArtifactBuildError, NotLiveMediaError

MARKER = "live.json"  # at the ESP's root
ESP_FILE = "efiboot.img"  # the ESP image, a file of the ISO 9660 tree
MARKER_FORMAT = 1
ESP_TYPE = UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
ISO9660_MAGIC_OFFSET = 0x8001  # "CD001" of the primary volume descriptor
SECTOR = 512
# Room in the ESP for the customization archive (configs only; the install image is
# always on the ISO): its limit, and what the ESP has free beyond the files.
CUSTOM_LIMIT = 8 << 20
ESP_SLACK = 16 << 20
MiB = 1 << 20


@dataclass(frozen=True)
class IsoInputs:
    brand_id: str
    title: str
    version: str
    usrhash: str
    kernel: Path
    initrds: tuple[Path, ...]  # in load order; the customization archive comes last
    epoch: int


@dataclass(frozen=True)
class LiveMarker:
    """``live.json``: what the ISO is, and where its customization archive is."""

    brand_id: str
    version: str
    usrhash: str
    custom_archive: str  # path in the ESP

    def render(self) -> str:
        return json.dumps({"format": MARKER_FORMAT, "brand": self.brand_id,
                           "version": self.version, "usrhash": self.usrhash,
                           "custom_archive": self.custom_archive}, indent=1) + "\n"  # fmt: skip

    @classmethod
    def parse(cls, text: bytes, origin: str) -> LiveMarker:
        try:
            data = json.loads(text)
            if data.get("format") != MARKER_FORMAT:
                raise NotLiveMediaError(f"{origin}: live.json format {data.get('format')!r}")
            return cls(data["brand"], data["version"], data["usrhash"], data["custom_archive"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotLiveMediaError(f"{origin}: its live.json is corrupt") from None


def entry_name(brand_id: str) -> str:
    return f"{brand_id}-live.conf"


def render_entry(inputs: IsoInputs, names: list[str]) -> str:
    # The verity root hash comes from the live initrd; the command line need not repeat it.
    return render_boot_entry(
        BootEntry(
            title=inputs.title,
            version=inputs.version,
            linux=f"/{inputs.brand_id}/vmlinuz",
            initrds=tuple(f"/{inputs.brand_id}/{name}" for name in names),
            options=tuple(live_kernel_command_line().split()),
        )
    )


def _esp_size(files: list[Path]) -> int:
    total = sum(f.stat().st_size for f in files) + ESP_SLACK
    # FAT overhead (one 512-byte cluster per cluster, 4 bytes of FAT each) and rounding.
    total += total // 64
    return max(64 * MiB, -(-total // MiB) * MiB)


def build_esp(inputs: IsoInputs, esp: Path, work: Path, log: Path | None) -> None:
    brand, epoch = inputs.brand_id, inputs.epoch
    staging = work / "live-esp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = [initrd.name for initrd in inputs.initrds] + ["custom.cpio"]
    custom = staging / "custom.cpio"
    custom.write_bytes(cpio_bytes([]))
    loader = staging / "loader.conf"
    loader.write_text("timeout 0\nconsole-mode keep\n", encoding="utf-8")
    entry = staging / entry_name(brand)
    entry.write_text(render_entry(inputs, names), encoding="utf-8")
    marker = staging / MARKER
    marker.write_text(LiveMarker(brand, inputs.version, inputs.usrhash,
                                 f"{brand}/custom.cpio").render(), encoding="utf-8")  # fmt: skip
    boot = staging / "BOOTX64.EFI"
    shutil.copyfile(SYSTEMD_BOOT, boot)
    files = [inputs.kernel, *inputs.initrds, custom, boot]
    make_vfat(esp, _esp_size(files), label="LIVE-ESP", volume_id=inputs.usrhash[:8], log=log)
    fat_mkdirs(esp, ["EFI", "EFI/BOOT", "loader", "loader/entries", brand], epoch=epoch, log=log)
    fat_copy(esp, boot, "EFI/BOOT/BOOTX64.EFI", epoch=epoch, log=log)
    fat_copy(esp, loader, "loader/loader.conf", epoch=epoch, log=log)
    fat_copy(esp, entry, f"loader/entries/{entry.name}", epoch=epoch, log=log)
    fat_copy(esp, marker, MARKER, epoch=epoch, log=log)
    kernel = staging / "vmlinuz"
    shutil.copyfile(inputs.kernel, kernel)
    fat_copy(esp, kernel, f"{brand}/vmlinuz", epoch=epoch, log=log)
    for initrd in inputs.initrds:
        fat_copy(esp, initrd, f"{brand}/{initrd.name}", epoch=epoch, log=log)
    fat_copy(esp, custom, f"{brand}/custom.cpio", epoch=epoch, log=log)


def volume_id(brand_id: str, version: str) -> str:
    return f"{brand_id}_{version}".upper().replace(".", "_").replace("-", "_")[:32]


def build_iso(inputs: IsoInputs, out: Path, *, work: Path, log: Path | None = None) -> None:
    """``out``: the ESP as partition 2 and El Torito UEFI image; the ISO 9660 tree holds
    only a README (everything booted is in the ESP)."""
    if not SYSTEMD_BOOT.is_file():
        raise ArtifactBuildError(f"{SYSTEMD_BOOT} is missing (apt-get install systemd-boot-efi)")
    work.mkdir(parents=True, exist_ok=True)
    root = work / "live-iso-root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    esp = root / ESP_FILE
    (root / "README.txt").write_text(
        f"{inputs.title}\nBoot this ISO with UEFI (CD or USB stick); see docs/live.md.\n",
        encoding="utf-8",
    )
    out.unlink(missing_ok=True)
    try:
        build_esp(inputs, esp, work, log)
        # File dates go into the ISO 9660 tree: clamp them, so two builds are identical.
        for path in (root / "README.txt", esp, root):
            os.utime(path, (inputs.epoch, inputs.epoch))
        run_tool(
            "live-iso",
            ["xorriso", "-as", "mkisofs", "-o", str(out), "-iso-level", "3", "-R", "-J",
             "-V", volume_id(inputs.brand_id, inputs.version),
             "-e", ESP_FILE, "-no-emul-boot", "-efi-boot-part", "--efi-boot-image",
             str(root)],
            log=log, env={"SOURCE_DATE_EPOCH": str(inputs.epoch)},
        )  # fmt: skip
    except ImageBuildError as exc:
        out.unlink(missing_ok=True)
        raise ArtifactBuildError(str(exc).splitlines()[0]) from exc
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class EspRegion:
    offset: int
    size: int


def find_esp(iso: Path) -> EspRegion:
    """The ESP partition of a live ISO (its GPT entry), checking that the file is an
    ISO 9660 image with a partition table at all."""
    try:
        with iso.open("rb") as src:
            src.seek(SECTOR)
            header = src.read(92)
            src.seek(ISO9660_MAGIC_OFFSET)
            magic = src.read(5)
            length = iso.stat().st_size
            if header[:8] != b"EFI PART" or magic != b"CD001":
                raise NotLiveMediaError(f"{iso} is not a hybrid ISO 9660 image")
            entries_lba, count, size = struct.unpack("<QII", header[72:88])
            if not (0 < count <= 1024 and 128 <= size <= 4096):
                raise NotLiveMediaError(f"{iso} has a corrupt partition table")
            src.seek(entries_lba * SECTOR)
            table = src.read(count * size)
    except OSError as exc:
        raise NotLiveMediaError(f"cannot read {iso}: {exc.strerror or exc}") from None
    for index in range(len(table) // size):
        entry = table[index * size : (index + 1) * size]
        if entry[:16] == ESP_TYPE.bytes_le:
            first, last = struct.unpack("<QQ", entry[32:48])
            region = EspRegion(first * SECTOR, (last - first + 1) * SECTOR)
            if region.offset + region.size > length:
                raise NotLiveMediaError(f"{iso} is truncated (its ESP ends past the file)")
            return region
    raise NotLiveMediaError(f"{iso} has no EFI system partition (not a live ISO)")
