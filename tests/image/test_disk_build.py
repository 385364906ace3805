"""The whole build on a fake rootfs (no mmdebstrap): disk layout, ESP, ROOT, outputs."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from wellcar.disk import USR_A_UUID, Slot, read_gpt, slot_partition
from wellcar.image import STEPS, BuildResult, build
from wellcar.image.esp import SYSTEMD_BOOT
from wellcar.image.settings import BuildSettings

from .conftest import needs_tools

pytestmark = [
    needs_tools("mkfs.erofs", "veritysetup", "mkfs.vfat", "mcopy", "mtype", "mkfs.ext4",
                "sfdisk", "debugfs", "dpkg-query"),
    pytest.mark.skipif(not SYSTEMD_BOOT.is_file(), reason="systemd-boot-efi not installed"),
]  # fmt: skip
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@pytest.fixture
def built(fake_rootfs: Path, small_settings: BuildSettings) -> BuildResult:
    steps: list[str] = []
    result = build(small_settings, rootfs=fake_rootfs, on_step=lambda n, i, t: steps.append(n))
    assert steps == list(STEPS)
    return result


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True,
                          env=MTOOLS_ENV).stdout  # fmt: skip


def partition_bytes(disk: Path, number: int) -> bytes:
    part = read_gpt(disk).partition(number)
    with disk.open("rb") as f:
        f.seek(part.byte_offset)
        return f.read(part.byte_size)


def test_outputs(built: BuildResult, small_settings: BuildSettings) -> None:
    out = small_settings.output
    names = ("disk.img", "usr.img", "vmlinuz", "initrd.img", "update.payload",
             "packages.txt", "version.txt", "SHA256SUMS", "build.log")  # fmt: skip
    for name in names:
        assert (out / name).is_file(), name
    assert not (out / ".work").exists()
    assert (out / "packages.txt").read_text() == (
        "base-files=12.4+deb12u10\nsystemd=252.36-1~deb12u1\n"
    )
    version = dict(line.split("=", 1) for line in (out / "version.txt").read_text().splitlines())
    assert version["WELLCAR_VERSION"] == "4799.0.0"
    assert version["WELLCAR_BUILD"] == "4799" and version["WELLCAR_BRANCH"] == "0"
    assert version["WELLCAR_USR_ROOT_HASH"] == built.root_hash
    for line in (out / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert "## step disk" in (out / "build.log").read_text()


def test_gpt_layout(built: BuildResult, small_settings: BuildSettings) -> None:
    dump = run("sfdisk", "--dump", str(small_settings.output / "disk.img"))
    assert "label: gpt" in dump
    for label in ("EFI-SYSTEM", "BIOS-BOOT", "USR-A", "USR-B", "OEM", "OEM-CONFIG", "ROOT"):
        assert f'name="{label}"' in dump
    assert f"uuid={str(USR_A_UUID).upper()}" in dump
    usr_line = next(line for line in dump.splitlines() if 'name="USR-A"' in line)
    assert re.search(rf"size= *{small_settings.usr_size // 512},", usr_line)


def test_usr_a_holds_erofs_then_hash_tree(
    built: BuildResult, small_settings: BuildSettings, tmp_path: Path
) -> None:
    out = small_settings.output
    disk = out / "disk.img"
    usr_a = slot_partition(read_gpt(disk), Slot.A)
    content = partition_bytes(disk, usr_a.number)
    image = (out / "usr.img").read_bytes()
    assert content[: len(image)] == image
    assert not content[len(image) :].strip(b"\0")
    offset = int(dict(line.split("=", 1) for line in (out / "version.txt").read_text().split())[
        "WELLCAR_USR_HASH_OFFSET"])  # fmt: skip
    part = tmp_path / "usr-a.bin"
    part.write_bytes(content)
    # What the initrd does: data and hash area in one partition, the hash at an offset.
    subprocess.run(["veritysetup", "verify", f"--hash-offset={offset}", str(part),
                    str(part), built.root_hash], check=True, capture_output=True)  # fmt: skip


def test_esp_contents_and_entry(
    built: BuildResult, small_settings: BuildSettings, tmp_path: Path
) -> None:
    esp = tmp_path / "esp.img"
    esp.write_bytes(partition_bytes(small_settings.output / "disk.img", 1))
    listing = run("mdir", "-i", str(esp), "-/", "-b", "::/")
    for path in ("::/EFI/BOOT/BOOTX64.EFI", "::/EFI/systemd/systemd-bootx64.efi",
                 "::/EFI/wellcar/vmlinuz-a", "::/EFI/wellcar/initrd-a",
                 "::/loader/loader.conf", "::/loader/entries/wellcar-a.conf"):  # fmt: skip
        assert path in listing, listing
    copied = tmp_path / "kernel"
    run("mcopy", "-i", str(esp), "::/EFI/wellcar/vmlinuz-a", str(copied))
    assert copied.read_bytes() == (small_settings.output / "vmlinuz").read_bytes()
    # No default entry: systemd-boot's order (sort-key, newest version, tries left) decides.
    assert "default" not in run("mtype", "-i", str(esp), "::/loader/loader.conf")
    entry = run("mtype", "-i", str(esp), "::/loader/entries/wellcar-a.conf")
    assert "linux /EFI/wellcar/vmlinuz-a\n" in entry
    assert "initrd /EFI/wellcar/initrd-a\n" in entry
    options = next(line for line in entry.splitlines() if line.startswith("options ")).split()
    version = dict(line.split("=", 1) for line in (small_settings.output / "version.txt")
                   .read_text().split())  # fmt: skip
    expected = (f"verity.usr=PARTUUID={USR_A_UUID}", f"verity.usrhash={built.root_hash}",
                f"verity.usroffset={version['WELLCAR_USR_HASH_OFFSET']}", "wellcar.slot=a",
                "root=PARTLABEL=ROOT", "console=ttyS0", "panic=10")  # fmt: skip
    for option in expected:
        assert option in options, option
    assert not any(o.startswith(("usrhash=", "mount.usr=")) for o in options)
    assert "sort-key wellcar\n" in entry
    # GRUB for BIOS machines (docs/bios.md): the same words, no counter, boot.img in the MBR.
    grub_cfg = run("mtype", "-i", str(esp), "::/grub/grub.cfg")
    assert f"  linux /EFI/wellcar/vmlinuz-a {' '.join(options[1:])}\n" in grub_cfg
    assert "tries_left" not in run("mtype", "-i", str(esp), "::/grub/grubenv")
    with (small_settings.output / "disk.img").open("rb") as disk:
        mbr = disk.read(512)
    assert mbr[:2] != bytes(2) and mbr[510:] == b"\x55\xaa"


def test_root_partition(built: BuildResult, small_settings: BuildSettings, tmp_path: Path) -> None:
    root = tmp_path / "root.img"
    root.write_bytes(partition_bytes(small_settings.output / "disk.img", 9))
    listing = run("debugfs", "-R", "ls -p /", str(root))
    names = {line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6}
    assert {"etc", "var", "home", "root", "usr", "bin", "tmp", "proc"} <= names
    assert "wellcar" in run("debugfs", "-R", "cat /etc/motd", str(root)).lower()
    assert 'Fast link dest: "usr/bin"' in run("debugfs", "-R", "stat /bin", str(root))
    assert "LABEL=ROOT" in run("blkid", "-p", "-o", "export", str(root))


def test_usr_contains_wellcar(
    built: BuildResult, small_settings: BuildSettings, fake_rootfs: Path
) -> None:
    # The tree the erofs image was made from (dump.erofs is not in erofs-utils 1.5's
    # Debian package with file extraction, so check the source tree).
    launcher = fake_rootfs / "usr/bin/wellcar"
    assert launcher.read_text().startswith("#!/usr/bin/python3\n")
    python = fake_rootfs / "usr/lib/wellcar/python"
    assert (python / "wellcar/image/build.py").is_file()
    assert (python / "typer/__init__.py").is_file()
    assert not list(python.rglob("__pycache__"))
    assert (fake_rootfs / "usr/share/wellcar/etc-defaults/motd").is_file()


def test_disk_is_reproducible(
    fake_rootfs: Path, small_settings: BuildSettings, tmp_path: Path
) -> None:
    from dataclasses import replace

    from .conftest import make_fake_rootfs

    first = build(small_settings, rootfs=fake_rootfs)
    other = make_fake_rootfs(tmp_path / "rootfs2")
    for name in ("boot/vmlinuz-6.1.0-test-amd64", "boot/initrd.img-6.1.0-test-amd64",
                 "usr/lib/big.bin"):  # fmt: skip
        (other / name).write_bytes((fake_rootfs / name).read_bytes())
    second = build(replace(small_settings, output=tmp_path / "out2"), rootfs=other)
    assert first.root_hash == second.root_hash
    sums = [(s.output / "SHA256SUMS").read_text() for s in (first, second)]
    assert sums[0] == sums[1]
