"""Platform images from one build: the table, the command line hook, and every output
format written by qemu-img and read back (on a small build from a fake rootfs)."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from wellcar.disk import read_gpt
from wellcar.image import build
from wellcar.image.disk_formats import check_vhd_footer
from wellcar.image.errors import ImageContentError
from wellcar.image.platform_image import make_platform_images
from wellcar.image.platforms import (
    PLATFORMS,
    ImageFormat,
    UnknownPlatformError,
    platform_files,
    platform_kernel_arguments,
    platform_named,
    platform_options,
)
from wellcar.image.settings import BuildSettings
from wellcar.metadata.platform_id import platform_from_cmdline

from .conftest import needs_tools

MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
BASE = "verity.usr=PARTUUID=x root=PARTLABEL=ROOT rw console=ttyS0 panic=10"


def test_unknown_platform_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPlatformError) as caught:
        platform_named("scaleway")
    message = str(caught.value)
    assert "\n" not in message and "'scaleway'" in message
    assert all(p.name in message for p in PLATFORMS)


def test_table_names_each_platform_once_and_its_ids_round_trip() -> None:
    names = [p.name for p in PLATFORMS]
    assert len(names) == len(set(names))
    wanted = {"qemu", "openstack", "proxmox", "azure", "vmware", "aws", "gce", "hetzner",
              "digitalocean", "metal"}  # fmt: skip
    assert set(names) == wanted
    for platform in PLATFORMS:
        line = " ".join(platform_options(BASE.split(), platform_kernel_arguments(platform)))
        assert platform_from_cmdline(line) == platform.platform_id
        # The serial console is the last console: /dev/console, where the boot log goes.
        consoles = [w for w in line.split() if w.startswith("console=")]
        assert consoles[-1].startswith("console=ttyS0"), (platform.name, consoles)


def test_command_line_hook_replaces_consoles_and_keeps_the_slot_words() -> None:
    aws = platform_kernel_arguments(platform_named("aws"))
    words = list(platform_options(BASE.split(), aws))
    assert words[:3] == ["verity.usr=PARTUUID=x", "root=PARTLABEL=ROOT", "rw"]
    assert "console=ttyS0" not in words and words[-2:] == ["console=tty0",
                                                            "console=ttyS0,115200n8"]  # fmt: skip
    assert "ignition.platform.id=aws" in words and "flatcar.oem.id=ec2" in words
    assert platform_options(words, aws) == tuple(words)  # applying twice changes nothing


def test_flatcar_spellings_name_the_platform() -> None:
    assert platform_from_cmdline("root=x coreos.oem.id=gce").ignition == "gcp"  # type: ignore[union-attr]
    assert platform_from_cmdline("flatcar.oem.id=ec2 quiet").ignition == "aws"  # type: ignore[union-attr]
    assert platform_from_cmdline("root=x flatcar.oem.id=nonsense") is None


TOOLS = ("qemu-img", "mkfs.erofs", "veritysetup", "mkfs.vfat", "mcopy", "mtype", "mdir",
         "mkfs.ext4", "sfdisk", "debugfs", "dpkg-query", "tar")  # fmt: skip


@needs_tools(*TOOLS)
def test_every_format_from_one_small_build(
    fake_rootfs: Path, small_settings: BuildSettings
) -> None:
    result = build(small_settings, rootfs=fake_rootfs)
    out = result.output
    raw_size = (out / "disk.img").stat().st_size
    raw_sums = (out / "SHA256SUMS").read_text()
    seen: list[str] = []
    made = make_platform_images(out, PLATFORMS, on_platform=lambda n, i, t: seen.append(n))
    assert seen == [p.name for p in PLATFORMS]
    # The build's own lines stay; every platform file is listed after them, once.
    sums = (out / "SHA256SUMS").read_text()
    assert sums.startswith(raw_sums)
    by_name = {m.platform.name: m for m in made}
    for item in made:
        assert [p.name for p in item.files] == list(platform_files(item.platform))
        for path in item.files:
            assert path.parent == out and sums.count(f"  {path.name}\n") == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".platform-work")]
    again = make_platform_images(out, [platform_named("qemu")])
    assert (out / "SHA256SUMS").read_text().count("  platform-qemu.qcow2\n") == 1
    assert again[0].image.path == by_name["qemu"].image.path

    def info(path: Path) -> dict[str, object]:
        text = subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        loaded: dict[str, object] = json.loads(text)
        return loaded

    qcow2 = by_name["qemu"].image.path
    assert qcow2.name == "platform-qemu.qcow2" and info(qcow2)["format"] == "qcow2"
    assert info(qcow2)["virtual-size"] == raw_size
    vhd = by_name["azure"].image.path
    check_vhd_footer(vhd, by_name["azure"].image.virtual_size)
    assert by_name["azure"].image.virtual_size % (1 << 20) == 0
    vmdk = by_name["vmware"].image
    assert info(vmdk.path)["format"] == "vmdk" and vmdk.extra[0].suffix == ".ovf"
    assert 'ovf:href="platform-vmware.vmdk"' in vmdk.extra[0].read_text()
    with tarfile.open(by_name["gce"].image.path) as archive:
        assert [(m.name, m.size) for m in archive.getmembers()] == [("disk.raw", raw_size)]

    # The aws raw image: the build's bytes but for OEM and the boot entry.
    aws = by_name["aws"].image.path
    gpt = read_gpt(aws)
    esp = gpt.partition_labelled("EFI-SYSTEM")
    entries = subprocess.run(["mdir", "-b", "-i", f"{aws}@@{esp.byte_offset}",
                              "::/loader/entries"], capture_output=True, text=True,
                             check=True, env=MTOOLS_ENV).stdout.split()  # fmt: skip
    assert entries
    entry = subprocess.run(["mtype", "-i", f"{aws}@@{esp.byte_offset}", entries[0]],
                           capture_output=True, text=True, check=True,
                           env=MTOOLS_ENV).stdout  # fmt: skip
    options = next(line for line in entry.splitlines() if line.startswith("options "))
    assert "ignition.platform.id=aws" in options and "flatcar.oem.id=ec2" in options
    assert "verity.usrhash=" in options
    # GRUB (BIOS machines) boots with the same words: its config follows the entries.
    grub_cfg = subprocess.run(["mtype", "-i", f"{aws}@@{esp.byte_offset}", "::/grub/grub.cfg"],
                              capture_output=True, text=True, check=True,
                              env=MTOOLS_ENV).stdout  # fmt: skip
    assert "ignition.platform.id=aws" in grub_cfg and "flatcar.oem.id=ec2" in grub_cfg
    oem = gpt.partition_labelled("OEM")
    with aws.open("rb") as disk:
        disk.seek(oem.byte_offset)
        (tmp := out / "oem-copy.img").write_bytes(disk.read(oem.byte_size))
    release = subprocess.run(["debugfs", "-R", "cat /oem-release", str(tmp)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert release.splitlines()[:2] == ["ID=ami", "VERSION_ID=4799.0.0"]
    args = subprocess.run(["debugfs", "-R", "cat /kernel-args", str(tmp)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert args.split() == list(platform_kernel_arguments(platform_named("aws")))
    # As sparse as the build's disk: the new OEM adds its few blocks, not its size.
    slack = 2 << 20
    assert aws.stat().st_blocks * 512 <= (out / "disk.img").stat().st_blocks * 512 + slack
    # Everything outside OEM and the ESP is the build's, byte for byte.
    root = gpt.partition_labelled("ROOT")
    with aws.open("rb") as a, (out / "disk.img").open("rb") as b:
        a.seek(root.byte_offset)
        b.seek(root.byte_offset)
        assert a.read(root.byte_size) == b.read(root.byte_size)


def test_not_a_build_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageContentError, match="not a finished build"):
        make_platform_images(tmp_path, [platform_named("aws")])


def test_a_broken_vhd_footer_is_caught(tmp_path: Path) -> None:
    fake = tmp_path / "x.vhd"
    fake.write_bytes(b"\0" * (1 << 20) + b"conectix" + b"\0" * 504)
    with pytest.raises(ImageContentError, match="disk type 0"):
        check_vhd_footer(fake, 1 << 20)
    assert ImageFormat.GCE_TAR.value == "tar.gz"


@needs_tools(*TOOLS, "zstd")
def test_a_release_publishes_platform_images_as_tuf_targets(
    fake_rootfs: Path, small_settings: BuildSettings, tmp_path: Path
) -> None:
    """One TUF target per platform file (release.image_artifacts rows), raw compressed."""
    from wellcar.payload.signing import load_signing_key
    from wellcar.release.create import ReleaseInputs, create_release
    from wellcar.trust.keys import Keyring
    from wellcar.trust.repository import TrustRepository, verify_published

    out = build(small_settings, rootfs=fake_rootfs).output
    make_platform_images(out, [platform_named("aws"), platform_named("vmware")])
    tree, keys = tmp_path / "tree", tmp_path / "tuf-keys"
    TrustRepository.initialize(tree, keys)
    assert small_settings.signing_key is not None
    inputs = ReleaseInputs([load_signing_key(small_settings.signing_key)], Keyring.load([keys]))
    create_release(tree, out, "alpha", inputs)
    targets = verify_published(tree).signed.targets
    prefix = "alpha/amd64-usr/4799.0.0/"
    for name in ("platform-aws.raw.zst", "platform-vmware.vmdk", "platform-vmware.ovf"):
        assert prefix + name in targets, sorted(targets)
    assert prefix + "update.payload" in targets  # still one payload per version
