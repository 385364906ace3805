"""The layout table and placing it on a disk."""

from __future__ import annotations

import pytest

from wellcar.disk import DiskLayout, ImageTooSmallError, LayoutError, Slot
from wellcar.disk.gpt import BACKUP_SECTORS
from wellcar.disk.layout import USR_A_INITIAL_ATTRIBUTES
from wellcar.disk.sizes import SECTOR_SIZE, MiB

from .conftest import TINY

# Flatcar's table, written out independently of the code under test.
FLATCAR_ROWS = [
    (1, "EFI-SYSTEM", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
    (2, "BIOS-BOOT", "21686148-6449-6E6F-744E-656564454649"),
    (3, "USR-A", "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6"),
    (4, "USR-B", "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6"),
    (6, "OEM", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    (7, "OEM-CONFIG", "C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0"),
    (9, "ROOT", "3884DD41-8582-4404-B9A8-E9B84F2DF50E"),
]


def test_table_matches_flatcar() -> None:
    table = DiskLayout().table()
    assert [spec.number for spec in table] == list(range(1, 10))
    created = [(s.number, s.label, str(s.type.guid).upper()) for s in table if s.created]
    assert created == FLATCAR_ROWS
    assert [s.number for s in table if not s.created] == [5, 8]
    by_number = {s.number: s for s in table}
    assert str(by_number[3].fixed_uuid) == "7130c94a-213a-4e5a-8e26-6cce9662f132"
    assert str(by_number[4].fixed_uuid) == "e03dd35c-7c2d-4a47-b3fe-27f15780a57c"
    assert by_number[1].attributes == 1 << 2  # legacy BIOS bootable
    assert by_number[3].attributes == USR_A_INITIAL_ATTRIBUTES == (1 << 48) | (1 << 56)
    assert by_number[4].attributes == 0


def test_slots_name_flatcar_partitions() -> None:
    assert (Slot.A.partition_number, Slot.A.label, Slot.A.other) == (3, "USR-A", Slot.B)
    assert (Slot.B.partition_number, Slot.B.label, Slot.B.other) == (4, "USR-B", Slot.A)


def test_flatcar_sizes_in_sectors() -> None:
    sectors = {s.number: (s.size or 0) // SECTOR_SIZE for s in DiskLayout.flatcar().table()}
    assert sectors == {1: 2097152, 2: 4096, 3: 4194304, 4: 4194304, 5: 0, 6: 2097152,
                       7: 131072, 8: 0, 9: 3653632}  # fmt: skip


def test_plan_is_contiguous_and_aligned() -> None:
    plan = DiskLayout().plan(DiskLayout().default_disk_size())
    lba = 2048
    for placed in plan.partitions:
        assert placed.first_lba == lba
        assert placed.first_lba % 2048 == 0 and placed.byte_size % MiB == 0
        assert placed.byte_size == placed.spec.size
        lba = placed.last_lba + 1
    assert plan.partitions[-1].last_lba <= plan.total_sectors - 1 - BACKUP_SECTORS


def test_root_takes_the_rest_aligned() -> None:
    layout = DiskLayout(root_size=None)
    plan = layout.plan(1000 * MiB + 7 * SECTOR_SIZE)
    root = plan.partitions[-1]
    assert root.spec.label == "ROOT"
    # the rest is 1000 MiB minus the lead-in, the others and the backup GPT, rounded down
    others = sum(p.byte_size for p in plan.partitions[:-1])
    assert root.byte_size == 1000 * MiB - MiB - others - MiB
    assert root.byte_size % MiB == 0


def test_minimum_size_is_exact() -> None:
    minimum = TINY.minimum_disk_size()
    assert minimum == MiB + 14 * MiB + BACKUP_SECTORS * SECTOR_SIZE
    TINY.plan(minimum)
    with pytest.raises(ImageTooSmallError, match=r"partition 9 \(ROOT\) does not fit"):
        TINY.plan(minimum - SECTOR_SIZE)
    assert TINY.default_disk_size() == 16 * MiB


def test_too_small_names_the_first_partition_that_does_not_fit() -> None:
    expected = r"partition 3 \(USR-A\).*at least 15745536 bytes \(16 MiB\)"
    with pytest.raises(ImageTooSmallError, match=expected):
        TINY.plan(5 * MiB)


@pytest.mark.parametrize(
    "changes", [{"usr_size": 0}, {"esp_size": MiB + 512}, {"root_size": -MiB}, {"oem_size": 1}]
)
def test_sizes_must_be_positive_mib_multiples(changes: dict[str, int]) -> None:
    with pytest.raises(LayoutError, match="multiple of 1 MiB"):
        DiskLayout(**changes)  # type: ignore[arg-type]


def test_disk_size_must_be_whole_sectors() -> None:
    with pytest.raises(LayoutError, match="multiple of 512"):
        TINY.plan(TINY.default_disk_size() + 1)
