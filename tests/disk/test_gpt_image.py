"""GPT in image files: create, read back, fall back to the backup, repair, rewrite attributes."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellcar.disk import (
    USR_A_UUID,
    USR_B_UUID,
    AttributeUpdate,
    DiskLayout,
    GptCorruptError,
    GptPrio,
    HeaderCopy,
    ImageAccessError,
    ImageTooSmallError,
    NotGptError,
    PartitionNotFoundError,
    create_disk_image,
    read_gpt,
    repair_gpt,
    write_partition_attributes,
)
from wellcar.disk import gpt_image as gpt_image_module
from wellcar.disk.gpt import decode_entry_array, decode_header
from wellcar.disk.partition_types import FLATCAR_USR
from wellcar.disk.sizes import GiB, MiB

from .conftest import TINY

SECTOR = 512


def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        value = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([value ^ 0xFF]))


def last_lba(path: Path) -> int:
    return path.stat().st_size // SECTOR - 1


def raw_copy_attributes(path: Path, header_lba: int) -> dict[int, int]:
    """Attributes as one specific copy stores them, decoded straight from the bytes."""
    total = path.stat().st_size // SECTOR
    data = path.read_bytes()
    header = decode_header(data[header_lba * SECTOR : (header_lba + 1) * SECTOR], header_lba, total)
    entries = data[header.entries_lba * SECTOR :][: header.entries_bytes]
    return {p.number: p.attributes for p in decode_entry_array(entries, header)}


# ------------------------------------------------------------------------------ create


def test_created_image_reads_back_as_laid_out(image: Path) -> None:
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.PRIMARY and not disk.needs_repair
    assert disk.size_bytes == image.stat().st_size == TINY.default_disk_size()
    plan = TINY.plan(disk.size_bytes)
    assert [p.number for p in disk.partitions] == [1, 2, 3, 4, 6, 7, 9]
    for partition, placed in zip(disk.partitions, plan.partitions, strict=True):
        assert partition.label == placed.spec.label
        assert partition.type_guid == placed.spec.type.guid
        assert (partition.byte_offset, partition.byte_size) == (
            placed.byte_offset,
            placed.byte_size,
        )
    usr_a, usr_b = disk.partition(3), disk.partition(4)
    assert (usr_a.unique_guid, usr_b.unique_guid) == (USR_A_UUID, USR_B_UUID)
    assert usr_a.byte_offset == 3 * MiB and usr_b.byte_offset == 7 * MiB
    assert usr_a.byte_size == usr_b.byte_size == 4 * MiB
    assert GptPrio.from_attributes(usr_a.attributes) == GptPrio(1, 0, True)
    assert usr_b.attributes == 0
    assert disk.partition(1).has_attribute_bit(2)
    assert disk.partition_labelled("ROOT").number == 9


def test_seed_makes_identical_tables(tmp_path: Path) -> None:
    first, second, other = tmp_path / "1.img", tmp_path / "2.img", tmp_path / "3.img"
    create_disk_image(first, TINY, seed="release-4459")
    create_disk_image(second, TINY, seed="release-4459")
    create_disk_image(other, TINY, seed="release-4460")
    assert first.read_bytes() == second.read_bytes()
    a, c = read_gpt(first), read_gpt(other)
    assert a.disk_guid != c.disk_guid
    assert a.partition(1).unique_guid != c.partition(1).unique_guid
    assert a.partition(3).unique_guid == c.partition(3).unique_guid == USR_A_UUID
    guids = {p.unique_guid for p in a.partitions} | {a.disk_guid}
    assert len(guids) == 8  # disk + 7 partitions, all different
    assert all(g.version == 4 for g in guids - {USR_A_UUID, USR_B_UUID})


def test_without_seed_guids_are_random(tmp_path: Path) -> None:
    create_disk_image(tmp_path / "1.img", TINY)
    create_disk_image(tmp_path / "2.img", TINY)
    assert read_gpt(tmp_path / "1.img").disk_guid != read_gpt(tmp_path / "2.img").disk_guid


def test_flatcar_sized_image_is_sparse(tmp_path: Path) -> None:
    path = tmp_path / "flatcar.img"
    disk = create_disk_image(path, DiskLayout.flatcar())
    assert disk.size_bytes > 7 * GiB
    assert path.stat().st_blocks * 512 < 1 * MiB  # only the tables were written
    assert disk.partition(3).byte_size == 2 * GiB


def test_create_refuses_to_overwrite(image: Path) -> None:
    with pytest.raises(ImageAccessError, match="already exists"):
        create_disk_image(image, TINY)
    create_disk_image(image, DiskLayout(), overwrite=True)
    assert read_gpt(image).partition(3).byte_size == 256 * MiB


def test_create_too_small(tmp_path: Path) -> None:
    with pytest.raises(ImageTooSmallError, match="too small"):
        create_disk_image(tmp_path / "small.img", TINY, 10 * MiB)
    assert not (tmp_path / "small.img").exists()


# -------------------------------------------------------------------------- corruption


def test_corrupt_primary_header_falls_back_to_backup(image: Path) -> None:
    flip_byte(image, SECTOR + 60)  # inside the disk GUID of the primary header
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.BACKUP
    assert disk.primary_problem is not None and "header CRC mismatch" in disk.primary_problem
    assert disk.backup_problem is None and disk.needs_repair
    assert disk.partition(3).unique_guid == USR_A_UUID


def test_corrupt_primary_entries_fall_back_to_backup(image: Path) -> None:
    flip_byte(image, 2 * SECTOR + 2 * 128 + 60)  # name of entry 3 in the primary array
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.BACKUP
    assert disk.primary_problem is not None and "entry array CRC mismatch" in disk.primary_problem
    assert disk.partition(3).label == "USR-A"


def test_wiped_primary_falls_back_to_backup(image: Path) -> None:
    patch_bytes(image, 0, bytes(34 * SECTOR))  # MBR, header and entries all gone
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.BACKUP and len(disk.partitions) == 7


def test_corrupt_backup_is_reported_and_repaired(image: Path) -> None:
    flip_byte(image, last_lba(image) * SECTOR + 80)
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.PRIMARY
    assert disk.backup_problem is not None and "CRC" in disk.backup_problem
    repaired = repair_gpt(image)
    assert not repaired.needs_repair
    assert not read_gpt(image).needs_repair


def test_repair_rebuilds_primary_from_backup(image: Path) -> None:
    before = read_gpt(image)
    patch_bytes(image, SECTOR, bytes(SECTOR))
    repaired = repair_gpt(image)
    assert repaired.source is HeaderCopy.PRIMARY and not repaired.needs_repair
    assert repaired.partitions == before.partitions
    assert repaired.disk_guid == before.disk_guid


def test_both_copies_corrupt(image: Path) -> None:
    flip_byte(image, SECTOR + 60)
    flip_byte(image, last_lba(image) * SECTOR + 60)
    with pytest.raises(GptCorruptError, match=r"both GPT copies are corrupt \(primary: header CRC"):
        read_gpt(image)
    with pytest.raises(GptCorruptError):
        write_partition_attributes(image, [AttributeUpdate(3, 0)])


def test_not_gpt(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MiB))
    with pytest.raises(NotGptError, match=r"blank\.img is not a GPT disk: no 'EFI PART' header"):
        read_gpt(blank)
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"hello")
    with pytest.raises(NotGptError, match="cannot hold a partition table"):
        read_gpt(tiny)


def test_4k_sector_disks_are_named(tmp_path: Path) -> None:
    path = tmp_path / "4k.img"
    path.write_bytes(bytes(4096) + b"EFI PART" + bytes(MiB))
    with pytest.raises(NotGptError, match="4096-byte sectors"):
        read_gpt(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageAccessError, match=r"missing\.img: no such file"):
        read_gpt(tmp_path / "missing.img")
    with pytest.raises(ImageAccessError, match="is a directory"):
        read_gpt(tmp_path)


# ------------------------------------------------------------------ attribute writes


def test_attribute_write_updates_both_copies(image: Path) -> None:
    trial = GptPrio(2, 1, False).apply_to(0)
    disk = write_partition_attributes(image, [AttributeUpdate(4, trial)])
    assert disk.partition(4).attributes == trial and not disk.needs_repair
    for header_lba in (1, last_lba(image)):
        attributes = raw_copy_attributes(image, header_lba)
        assert attributes[4] == trial
        assert attributes[3] == GptPrio(1, 0, True).apply_to(0)


def test_attribute_write_changes_only_those_eight_bytes(image: Path) -> None:
    before = image.read_bytes()
    write_partition_attributes(image, [AttributeUpdate(4, 0x0123_4567_89AB_CDEF)])
    after = image.read_bytes()
    changed = [
        block + i
        for block in range(0, len(before), 4096)
        if before[block : block + 4096] != after[block : block + 4096]  # skip equal blocks fast
        for i in range(4096)
        if before[block + i] != after[block + i]
    ]
    entry_attr = 3 * 128 + 48  # entry 4's attribute field in an entry array
    backup_entries = (last_lba(image) - 32) * SECTOR
    for base in (2 * SECTOR, backup_entries):
        assert after[base + entry_attr : base + entry_attr + 8] == (0x0123_4567_89AB_CDEF).to_bytes(
            8, "little"
        )
    allowed = (
        set(range(SECTOR + 16, SECTOR + 20))  # primary header CRC
        | set(range(SECTOR + 88, SECTOR + 92))  # primary entries CRC
        | set(range(2 * SECTOR + entry_attr, 2 * SECTOR + entry_attr + 8))
        | {last_lba(image) * SECTOR + o for o in [*range(16, 20), *range(88, 92)]}
        | set(range(backup_entries + entry_attr, backup_entries + entry_attr + 8))
    )
    assert changed and set(changed) <= allowed


def test_writes_go_backup_first(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str | int] = []
    real_write, real_sync = gpt_image_module._write_at, gpt_image_module._sync

    def write_at(handle: object, lba: int, data: bytes) -> None:
        events.append(lba)
        real_write(handle, lba, data)  # type: ignore[arg-type]

    def sync(handle: object) -> None:
        events.append("fsync")
        real_sync(handle)  # type: ignore[arg-type]

    monkeypatch.setattr(gpt_image_module, "_write_at", write_at)
    monkeypatch.setattr(gpt_image_module, "_sync", sync)
    write_partition_attributes(image, [AttributeUpdate(4, 1 << 52)])
    end = last_lba(image)
    assert events == [end - 32, end, "fsync", 2, 1, "fsync"]


class Crash(Exception):
    pass


def _crash_when_writing(monkeypatch: pytest.MonkeyPatch, crash_lba: int) -> None:
    real_write = gpt_image_module._write_at

    def write_at(handle: object, lba: int, data: bytes) -> None:
        if lba == crash_lba:
            raise Crash
        real_write(handle, lba, data)  # type: ignore[arg-type]

    monkeypatch.setattr(gpt_image_module, "_write_at", write_at)


def test_crash_before_primary_keeps_the_old_table(
    image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_when_writing(monkeypatch, crash_lba=2)  # backup done, primary not started
    with pytest.raises(Crash):
        write_partition_attributes(image, [AttributeUpdate(4, 1 << 52)])
    monkeypatch.undo()
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.PRIMARY and disk.partition(4).attributes == 0
    assert disk.backup_problem is not None and "differs" in disk.backup_problem


def test_crash_inside_primary_gives_the_new_table(
    image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_when_writing(monkeypatch, crash_lba=1)  # primary entries written, header not
    with pytest.raises(Crash):
        write_partition_attributes(image, [AttributeUpdate(4, 1 << 52)])
    monkeypatch.undo()
    disk = read_gpt(image)
    assert disk.source is HeaderCopy.BACKUP and disk.partition(4).attributes == 1 << 52


def test_write_to_missing_partition_changes_nothing(image: Path) -> None:
    before = image.read_bytes()
    with pytest.raises(PartitionNotFoundError, match=r"no partition 5 \(.*1, 2, 3, 4, 6, 7, 9\)"):
        write_partition_attributes(image, [AttributeUpdate(4, 1), AttributeUpdate(5, 1)])
    assert image.read_bytes() == before


def test_write_repairs_a_damaged_copy(image: Path) -> None:
    flip_byte(image, SECTOR + 60)
    disk = write_partition_attributes(image, [AttributeUpdate(3, GptPrio(1, 0, True).apply_to(0))])
    assert disk.source is HeaderCopy.PRIMARY and not disk.needs_repair


def test_write_to_missing_file_gives_access_error(tmp_path: Path) -> None:
    with pytest.raises(ImageAccessError, match=r"gone\.img: no such file"):
        write_partition_attributes(tmp_path / "gone.img", [AttributeUpdate(4, 0)])
    assert not (tmp_path / "gone.img").exists()


def test_usr_type_guid_is_flatcars(image: Path) -> None:
    assert str(read_gpt(image).partition(4).type_guid).upper() == str(FLATCAR_USR.guid).upper()
