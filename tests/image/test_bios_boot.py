"""GRUB's embedding for BIOS machines: the MBR's boot code, core.img's block list, and the
clear failures of a config GRUB cannot parse and a BIOS-BOOT partition too small."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from wellcar.image.bios_boot import (
    GRUB_PC_MODULES_DIR,
    boot_sector,
    check_grub_script,
    core_with_blocklist,
    install_bios_boot,
)
from wellcar.image.errors import ImageContentError

needs_grub_mkimage = pytest.mark.skipif(
    shutil.which("grub-mkimage") is None or not (GRUB_PC_MODULES_DIR / "boot.img").is_file(),
    reason="needs grub-common and grub-pc-bin",
)


def test_the_boot_sector_points_at_core_and_keeps_the_partition_table() -> None:
    mbr = bytes(446) + bytes(range(64)) + b"\x55\xaa"
    boot_img = bytes([0xEB, 0x63]) + b"\x11" * 508 + b"\x55\xaa"
    sector = boot_sector(mbr, boot_img, 34816)
    assert len(sector) == 512
    assert sector[:2] == b"\xeb\x63"
    assert struct.unpack_from("<Q", sector, 0x5C) == (34816,)
    assert sector[0x64] == 0xFF and sector[0x66:0x68] == b"\x90\x90"
    assert sector[440:] == mbr[440:]  # disk signature, partition table, 0x55aa
    with pytest.raises(ImageContentError, match="one 512-byte sector"):
        boot_sector(mbr[:100], boot_img, 1)


def test_the_block_list_names_the_rest_of_core() -> None:
    core = b"\x01" * 512 + b"\x02" * 1000
    embedded = core_with_blocklist(core, 34816)
    assert len(embedded) == 3 * 512 and embedded[1512:] == bytes(24)
    assert struct.unpack_from("<QHH", embedded, 500) == (34817, 2, 0x820)
    assert embedded[488:500] == bytes(12)  # the terminator
    assert embedded[512:] .startswith(b"\x02" * 1000)  # fmt: skip
    with pytest.raises(ImageContentError, match="less than a sector"):
        core_with_blocklist(b"\x01" * 100, 1)


@needs_grub_mkimage
def test_grub_goes_into_the_mbr_and_bios_boot(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(446) + b"\xee" * 16 + bytes(48) + b"\x55\xaa")
    with disk.open("r+b") as f:
        f.truncate(8 << 20)
    size = install_bios_boot(disk, 2048, 2 << 20, work=tmp_path, log=None)
    data = disk.read_bytes()
    assert struct.unpack_from("<Q", data, 0x5C) == (2048,)
    assert data[446:462] == b"\xee" * 16
    core = data[2048 * 512 : 2048 * 512 + size]
    assert struct.unpack_from("<Q", core, 500) == (2049,)
    assert not (tmp_path / "core.img").exists()


@needs_grub_mkimage
def test_a_full_bios_boot_partition_is_one_clear_line(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(512) * 4)
    before = disk.read_bytes()
    with pytest.raises(ImageContentError) as caught:
        install_bios_boot(disk, 1, 4096, work=tmp_path, log=None)
    message = str(caught.value)
    assert "\n" not in message
    assert "does not fit the BIOS-BOOT partition (4096 bytes)" in message
    assert disk.read_bytes() == before  # nothing written


@pytest.mark.skipif(shutil.which("grub-script-check") is None, reason="needs grub-common")
def test_a_config_grub_cannot_parse_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "grub.cfg"
    config.write_text("if [ x ]; then\n  echo\n")
    with pytest.raises(ImageContentError, match=r"the rendered grub\.cfg does not parse") as caught:
        check_grub_script(config, log=None)
    assert "\n" not in str(caught.value) and "Syntax error at line 2" in str(caught.value)
    config.write_text("set timeout=0\n")
    check_grub_script(config, log=None)
