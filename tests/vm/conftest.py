"""A tiny UEFI-bootable disk: GPT with one ESP holding systemd-boot and an entry whose kernel
is missing. Enough for OVMF to find and start our bootloader, in a few seconds of TCG."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
SECTOR = 512
ESP_START_SECTOR = 2048
ESP_SECTORS = 40 * 2048  # 40 MiB: the smallest size mkfs.vfat formats as FAT32 without fuss
TOOLS = ("qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy", "mmd", "sfdisk")


def _run(*argv: str | Path) -> None:
    # mtools refuses images whose FAT geometry it finds odd unless told not to check.
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, env=env)


@pytest.fixture(scope="session")
def boot_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing or not SYSTEMD_BOOT.is_file():
        pytest.skip(f"needs {', '.join(missing) or SYSTEMD_BOOT}")
    work = tmp_path_factory.mktemp("boot-disk")
    esp = work / "esp.img"
    with esp.open("wb") as f:
        f.truncate(ESP_SECTORS * SECTOR)
    _run("mkfs.vfat", "-F", "32", "-n", "ESP", esp)
    _run("mmd", "-i", esp, "::EFI", "::EFI/BOOT", "::loader", "::loader/entries")
    _run("mcopy", "-i", esp, SYSTEMD_BOOT, "::EFI/BOOT/BOOTX64.EFI")
    loader_conf = work / "loader.conf"
    loader_conf.write_text("timeout 3\ndefault wellcar.conf\n")
    _run("mcopy", "-i", esp, loader_conf, "::loader/loader.conf")
    entry = work / "wellcar.conf"
    entry.write_text("title Wellcar test\nlinux /wellcar/missing-vmlinuz\noptions console=ttyS0\n")
    _run("mcopy", "-i", esp, entry, "::loader/entries/wellcar.conf")

    disk = work / "disk.img"
    with disk.open("wb") as f:
        # room for the backup GPT after the ESP
        f.truncate((ESP_START_SECTOR + ESP_SECTORS + 2048) * SECTOR)
    table = f"label: gpt\nstart={ESP_START_SECTOR}, size={ESP_SECTORS}, type={ESP_TYPE}, name=ESP\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=table, text=True, check=True)
    with disk.open("r+b") as target:
        target.seek(ESP_START_SECTOR * SECTOR)
        target.write(esp.read_bytes())
    return disk
