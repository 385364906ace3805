"""GRUB for BIOS machines: core.img in the BIOS-BOOT partition, boot.img in the MBR.

What ``grub-install --target=i386-pc`` does, without a block device or root: Debian's
``grub-mkimage`` (grub-common, with grub-pc-bin's modules) makes a core.img whose prefix is
the ESP's ``grub/`` directory and which carries every module the boot contract's grub.cfg
uses (no module directory on the ESP); then the two fields ``grub-bios-setup`` patches are
written here: the MBR's boot code gets boot.img with core.img's first sector, and
core.img's first sector (diskboot) gets the block list of the rest. The protective MBR's
partition table and signature stay as the GPT writer made them. See docs/bios.md.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from wellcar.disk.boot_entries import GRUB_PREFIX
from wellcar.disk.sizes import SECTOR_SIZE

from .errors import ImageContentError, ToolError
from .tools import run_tool

STEP = "bios-boot"
GRUB_PC_MODULES_DIR = Path("/usr/lib/grub/i386-pc")  # Debian's grub-pc-bin
# What the rendered grub.cfg needs, built in: disk and file system, script, the env block,
# the serial console, and the Linux loader. grub-mkimage adds their dependencies.
GRUB_MODULES = ("biosdisk", "part_gpt", "fat", "normal", "configfile", "loadenv", "test",
                "echo", "serial", "terminal", "linux", "boot")  # fmt: skip

# Offsets in boot.img and in core.img's first sector (GRUB's include/grub/i386/pc/boot.h).
BOOT_CODE_SIZE = 440  # the MBR bytes before the disk signature and partition table
KERNEL_SECTOR_OFFSET = 0x5C  # u64: the LBA of core.img's first sector
BOOT_DRIVE_OFFSET = 0x64  # u8: 0xff = the drive the BIOS booted from
DRIVE_CHECK_OFFSET = 0x66  # two NOPs skip the check for BIOSes that pass a wrong drive
BLOCKLIST_SIZE = 12  # u64 start, u16 sectors, u16 segment; the first at the sector's end
CORE_LOAD_SEGMENT = 0x800 + (SECTOR_SIZE >> 4)  # where core.img's second sector loads


def boot_sector(mbr: bytes, boot_img: bytes, core_lba: int) -> bytes:
    """The disk's first sector: boot.img's code pointing at ``core_lba``, with ``mbr``'s
    disk signature, partition table and boot signature kept."""
    if len(mbr) != SECTOR_SIZE or len(boot_img) != SECTOR_SIZE:
        raise ImageContentError(STEP, "boot.img and the MBR must be one 512-byte sector each")
    code = bytearray(boot_img[:BOOT_CODE_SIZE])
    struct.pack_into("<Q", code, KERNEL_SECTOR_OFFSET, core_lba)
    code[BOOT_DRIVE_OFFSET] = 0xFF
    code[DRIVE_CHECK_OFFSET : DRIVE_CHECK_OFFSET + 2] = b"\x90\x90"
    sector = bytes(code) + mbr[BOOT_CODE_SIZE:]
    return sector[:510] + b"\x55\xaa"


def core_with_blocklist(core: bytes, core_lba: int) -> bytes:
    """core.img padded to whole sectors, its first sector naming the rest: contiguous
    sectors from ``core_lba + 1``, loaded after the first."""
    if len(core) < SECTOR_SIZE:
        raise ImageContentError(STEP, f"core.img is {len(core)} bytes, less than a sector")
    sectors = -(-len(core) // SECTOR_SIZE)
    if sectors - 1 > 0xFFFF:
        raise ImageContentError(STEP, f"core.img has {sectors} sectors, more than GRUB loads")
    image = bytearray(core.ljust(sectors * SECTOR_SIZE, b"\0"))
    first = SECTOR_SIZE - BLOCKLIST_SIZE
    # The list runs down from the sector's end to a zero-length terminator: one entry here.
    image[first - BLOCKLIST_SIZE : first] = bytes(BLOCKLIST_SIZE)
    struct.pack_into("<QHH", image, first, core_lba + 1, sectors - 1, CORE_LOAD_SEGMENT)
    return bytes(image)


def make_core_image(
    out: Path, *, log: Path | None, modules_dir: Path = GRUB_PC_MODULES_DIR
) -> bytes:
    if not (modules_dir / "boot.img").is_file():
        raise ImageContentError(STEP, f"{modules_dir} has no GRUB modules (install grub-pc-bin)")
    run_tool(STEP, ["grub-mkimage", "-O", "i386-pc", "-d", str(modules_dir), "-o", str(out),
                    "-p", GRUB_PREFIX, *GRUB_MODULES], log=log)  # fmt: skip
    return out.read_bytes()


def install_bios_boot(
    disk: Path,
    bios_boot_lba: int,
    bios_boot_size: int,
    *,
    work: Path,
    log: Path | None,
    modules_dir: Path = GRUB_PC_MODULES_DIR,
) -> int:
    """GRUB into ``disk``: core.img at ``bios_boot_lba`` (it must fit the partition's
    ``bios_boot_size`` bytes), boot.img into the MBR. Returns core.img's size."""
    core = make_core_image(work / "core.img", log=log, modules_dir=modules_dir)
    embedded = core_with_blocklist(core, bios_boot_lba)
    if len(embedded) > bios_boot_size:
        raise ImageContentError(
            STEP,
            f"GRUB's core.img ({len(embedded)} bytes) does not fit the BIOS-BOOT partition "
            f"({bios_boot_size} bytes); raise its size in the layout",
        )
    with disk.open("r+b") as f:
        mbr = f.read(SECTOR_SIZE)
        f.seek(0)
        f.write(boot_sector(mbr, (modules_dir / "boot.img").read_bytes(), bios_boot_lba))
        f.seek(bios_boot_lba * SECTOR_SIZE)
        f.write(embedded)
    (work / "core.img").unlink()
    return len(core)


def check_grub_script(config: Path, *, log: Path | None) -> None:
    """``grub-script-check`` on a rendered grub.cfg, when grub-common is installed: a
    config GRUB cannot parse would leave a BIOS machine at GRUB's prompt."""
    if shutil.which("grub-script-check") is None:
        return
    try:
        run_tool(STEP, ["grub-script-check", str(config)], log=log)
    except ToolError as exc:
        last = exc.output_tail.splitlines()[-1] if exc.output_tail else f"status {exc.returncode}"
        raise ImageContentError(
            STEP, f"the rendered grub.cfg does not parse (grub-script-check: {last})"
        ) from exc
