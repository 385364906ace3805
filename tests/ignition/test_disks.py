"""Partitions and filesystems on image files (sgdisk and mkfs work on plain files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wellcar.ignition.disks import (
    apply_disk_commands,
    make_filesystem,
    plan_disk,
    probe,
    read_partitions,
)
from wellcar.ignition.errors import ConflictError
from wellcar.ignition.types import Disk, Filesystem, Partition

pytestmark = pytest.mark.skipif(
    not (shutil.which("sgdisk") and shutil.which("mkfs.ext4") and shutil.which("blkid")),
    reason="needs gdisk, e2fsprogs and blkid",
)
DATA_GUID = "0fc63daf-8483-4772-8e79-3d69d8477de4"


def image(tmp_path: Path, mib: int = 16) -> Path:
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(mib << 20)
    return path


def test_partitions_are_created_then_recognised(tmp_path: Path) -> None:
    img = image(tmp_path)
    disk = Disk(str(img), wipe_table=True, partitions=(
        Partition(label="DATA", number=1, start_mib=1, size_mib=4, type_guid=DATA_GUID),
        Partition(label="REST", number=2),
    ))  # fmt: skip
    apply_disk_commands(plan_disk(disk, "$.storage.disks[0]"))
    parts = {p.number: p for p in read_partitions(img)}
    assert (parts[1].label, parts[1].start, parts[1].size) == ("DATA", 2048, 8192)
    assert parts[1].type_guid == DATA_GUID
    assert parts[2].label == "REST"
    again = Disk(str(img), partitions=(Partition(label="DATA", number=1, size_mib=4),))
    assert plan_disk(again, "$") == []  # already as asked: nothing to do
    different = Disk(str(img), partitions=(Partition(number=1, size_mib=8),))
    with pytest.raises(ConflictError, match=r"partitions\[0\]: partition 1 exists with size 4 MiB"):
        plan_disk(different, "$.storage.disks[0]")


def test_filesystem_made_reused_and_not_wiped_without_consent(tmp_path: Path) -> None:
    img = image(tmp_path, 8)
    fs = Filesystem(str(img), format="ext4", label="DATA")
    make_filesystem(fs, "$.storage.filesystems[0]")
    assert probe(img)["LABEL"] == "DATA"
    uuid = probe(img)["UUID"]
    make_filesystem(fs, "$.storage.filesystems[0]")  # matches: kept
    assert probe(img)["UUID"] == uuid
    with pytest.raises(ConflictError, match=r"filesystems\[0\]: .* already holds a ext4"):
        make_filesystem(
            Filesystem(str(img), format="ext4", label="OTHER"), "$.storage.filesystems[0]"
        )
    assert probe(img)["UUID"] == uuid
