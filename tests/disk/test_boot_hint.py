"""Finding the running slot from a kernel command line or a device."""

from __future__ import annotations

from uuid import UUID

import pytest

from wellcar.disk import USR_A_UUID, USR_B_UUID, PartitionNotFoundError, Slot, slot_from_boot_hint
from wellcar.disk.gpt import Partition
from wellcar.disk.partition_types import FLATCAR_USR

CMDLINE = "BOOT_IMAGE=/flatcar/vmlinuz-b console=ttyS0 mount.usrflags=ro consoleblank=0"


@pytest.mark.parametrize(
    ("hint", "slot"),
    [
        ("A", Slot.A),
        ("b", Slot.B),
        ("USR-B", Slot.B),
        ("usr-a", Slot.A),
        (str(USR_B_UUID), Slot.B),
        (str(USR_A_UUID).upper(), Slot.A),
        (f"PARTUUID={USR_B_UUID}", Slot.B),
        ("PARTLABEL=USR-A", Slot.A),
        (f"/dev/disk/by-partuuid/{USR_A_UUID}", Slot.A),
        ("/dev/disk/by-partlabel/USR-B", Slot.B),
        ("/dev/sda4", Slot.B),
        ("/dev/nvme0n1p3", Slot.A),
        (f"{CMDLINE} mount.usr=PARTUUID={USR_B_UUID} root=LABEL=ROOT", Slot.B),
        (f"mount.usr=/dev/mapper/usr verity.usr=PARTUUID={USR_A_UUID} {CMDLINE}", Slot.A),
        (f"usr=PARTLABEL=USR-B {CMDLINE}", Slot.B),
    ],
)
def test_hints(hint: str, slot: Slot) -> None:
    assert slot_from_boot_hint(hint) is slot


def test_partuuid_matches_the_disk_not_only_flatcars_fixed_ones() -> None:
    custom = UUID("11111111-2222-4333-8444-555555555555")
    partitions = [Partition(4, FLATCAR_USR.guid, custom, 100, 200, 0, "USR-B")]
    assert slot_from_boot_hint(f"mount.usr=PARTUUID={custom}", partitions) is Slot.B


@pytest.mark.parametrize(
    "hint",
    [
        "C",
        "/dev/sda9",
        "mount.usr=/dev/mapper/usr",
        "PARTUUID=00000000-0000-0000-0000-000000000000",
        "",
    ],
)
def test_unknown_hints(hint: str) -> None:
    with pytest.raises(PartitionNotFoundError, match="does not name a /usr slot"):
        slot_from_boot_hint(hint)
