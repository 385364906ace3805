"""Flatcar's partition layout as data, and placing it on a disk of a given size.

Numbers, labels and type GUIDs are Flatcar's (``build_library/disk_layout.json``), so tools
and configs written for Flatcar find the same partitions. Sizes are configurable; the
defaults are small enough for tests and demos, :meth:`DiskLayout.flatcar` gives Flatcar's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from uuid import UUID

from .errors import ImageTooSmallError, LayoutError
from .gpt import BACKUP_SECTORS, LEGACY_BIOS_BOOTABLE_BIT
from .gptprio import GptPrio
from .partition_types import (
    BIOS_BOOT,
    EFI_SYSTEM,
    FLATCAR_RESERVED,
    FLATCAR_RESIZE,
    FLATCAR_USR,
    LINUX_DATA,
    UNUSED,
    PartitionType,
)
from .sizes import ALIGNMENT, SECTOR_SIZE, GiB, MiB, format_size, is_aligned

USR_A_NUMBER = 3
USR_B_NUMBER = 4
# Fixed by Flatcar so that boot code can name /usr by PARTUUID without reading the GPT.
USR_A_UUID = UUID("7130c94a-213a-4e5a-8e26-6cce9662f132")
USR_B_UUID = UUID("e03dd35c-7c2d-4a47-b3fe-27f15780a57c")

# The image build ships USR-A as the one and only good /usr.
USR_A_INITIAL_ATTRIBUTES = GptPrio(priority=1, tries=0, successful=True).apply_to(0)
ESP_ATTRIBUTES = 1 << LEGACY_BIOS_BOOTABLE_BIT

_ALIGNMENT_SECTORS = ALIGNMENT // SECTOR_SIZE


# The writable root file system: the boot entries find it by this label.
ROOT_LABEL = "ROOT"


class Slot(StrEnum):
    """The two /usr slots."""

    A = "A"
    B = "B"

    @property
    def partition_number(self) -> int:
        return USR_A_NUMBER if self is Slot.A else USR_B_NUMBER

    @property
    def label(self) -> str:
        return f"USR-{self.value}"

    @property
    def partition_uuid(self) -> UUID:
        return USR_A_UUID if self is Slot.A else USR_B_UUID

    @property
    def other(self) -> Slot:
        return Slot.B if self is Slot.A else Slot.A


class Filesystem(StrEnum):
    """What the image build puts in a partition (informative; this package formats nothing)."""

    VFAT = "vfat"
    EROFS = "erofs"  # Wellcar's /usr: erofs + dm-verity (Flatcar uses btrfs)
    EXT4 = "ext4"
    NONE = "none"  # raw (GRUB core.img) or nothing


@dataclass(frozen=True)
class PartitionSpec:
    """One row of the layout table."""

    number: int
    label: str
    type: PartitionType
    size: int | None  # bytes; None means "the rest of the disk"; 0 for an empty slot
    fs: Filesystem
    fixed_uuid: UUID | None = None  # None: derived from the seed, or random
    attributes: int = 0  # initial GPT attribute bits

    @property
    def created(self) -> bool:
        """False for the table's empty slots (5 and 8), which get no GPT entry."""
        return self.type != UNUSED


@dataclass(frozen=True)
class PlannedPartition:
    """A layout row placed on a disk: sectors [first_lba, last_lba]."""

    spec: PartitionSpec
    first_lba: int
    last_lba: int

    @property
    def byte_offset(self) -> int:
        return self.first_lba * SECTOR_SIZE

    @property
    def byte_size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR_SIZE


@dataclass(frozen=True)
class DiskPlan:
    total_sectors: int
    partitions: tuple[PlannedPartition, ...]


@dataclass(frozen=True)
class DiskLayout:
    """Partition sizes in bytes, each a multiple of 1 MiB. ``root_size=None``: ROOT takes
    the rest of the disk. USR-A and USR-B always have the same size (either may receive the
    other's update)."""

    esp_size: int = 64 * MiB
    bios_boot_size: int = 2 * MiB
    usr_size: int = 256 * MiB
    oem_size: int = 64 * MiB
    oem_config_size: int = 16 * MiB
    root_size: int | None = 128 * MiB

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if value <= 0 or not is_aligned(value):
                raise LayoutError(
                    f"{field.name.replace('_', ' ')} {value} bytes is not a positive "
                    f"multiple of 1 MiB"
                )

    @classmethod
    def flatcar(cls) -> DiskLayout:
        """Flatcar's sizes since 2025 (commit 07cc8512); ROOT as in its plain images."""
        return cls(
            esp_size=1 * GiB,
            bios_boot_size=2 * MiB,
            usr_size=2 * GiB,
            oem_size=1 * GiB,
            oem_config_size=64 * MiB,
            root_size=3653632 * SECTOR_SIZE,  # 1784 MiB
        )

    def table(self) -> tuple[PartitionSpec, ...]:
        """All nine rows, the empty slots 5 and 8 included."""
        return (
            PartitionSpec(1, "EFI-SYSTEM", EFI_SYSTEM, self.esp_size, Filesystem.VFAT,
                          attributes=ESP_ATTRIBUTES),
            PartitionSpec(2, "BIOS-BOOT", BIOS_BOOT, self.bios_boot_size, Filesystem.NONE),
            PartitionSpec(USR_A_NUMBER, Slot.A.label, FLATCAR_USR, self.usr_size,
                          Filesystem.EROFS, USR_A_UUID, USR_A_INITIAL_ATTRIBUTES),
            PartitionSpec(USR_B_NUMBER, Slot.B.label, FLATCAR_USR, self.usr_size,
                          Filesystem.EROFS, USR_B_UUID),
            PartitionSpec(5, "ROOT-C", UNUSED, 0, Filesystem.NONE),
            PartitionSpec(6, "OEM", LINUX_DATA, self.oem_size, Filesystem.EXT4),
            PartitionSpec(7, "OEM-CONFIG", FLATCAR_RESERVED, self.oem_config_size,
                          Filesystem.NONE),
            PartitionSpec(8, "(reserved)", UNUSED, 0, Filesystem.NONE),
            PartitionSpec(9, ROOT_LABEL, FLATCAR_RESIZE, self.root_size, Filesystem.EXT4),
        )  # fmt: skip

    def minimum_disk_size(self) -> int:
        """The smallest image holding the layout (ROOT of 1 MiB if it takes the rest)."""
        partitions = sum(spec.size or ALIGNMENT for spec in self.table() if spec.created)
        return ALIGNMENT + partitions + BACKUP_SECTORS * SECTOR_SIZE

    def default_disk_size(self) -> int:
        """:meth:`minimum_disk_size` rounded up to whole MiB."""
        return -(-self.minimum_disk_size() // MiB) * MiB

    def plan(self, disk_size: int) -> DiskPlan:
        """Place the partitions, in number order, from 1 MiB on, each aligned to 1 MiB."""
        if disk_size <= 0 or disk_size % SECTOR_SIZE:
            raise LayoutError(f"disk size {disk_size} is not a positive multiple of 512 bytes")
        total = disk_size // SECTOR_SIZE
        last_usable = total - 1 - BACKUP_SECTORS
        lba = _ALIGNMENT_SECTORS
        placed: list[PlannedPartition] = []
        for spec in self.table():
            if not spec.created:
                continue
            if spec.size is None:
                available = last_usable + 1 - lba
                sectors = available - available % _ALIGNMENT_SECTORS
            else:
                sectors = spec.size // SECTOR_SIZE
            if sectors <= 0 or lba + sectors - 1 > last_usable:
                raise ImageTooSmallError(
                    f"an image of {format_size(disk_size)} is too small for this layout: "
                    f"partition {spec.number} ({spec.label}) does not fit; it needs at "
                    f"least {self.minimum_disk_size()} bytes "
                    f"({format_size(self.default_disk_size())})"
                )
            placed.append(PlannedPartition(spec, lba, lba + sectors - 1))
            lba += sectors
        return DiskPlan(total, tuple(placed))
