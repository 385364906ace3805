"""GPT partition type GUIDs used by Flatcar's layout, named as cgpt and disk_layout.json do."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class PartitionType:
    """A GPT partition type: its cgpt name (``flatcar-usr``) and its type GUID."""

    name: str
    guid: UUID
    description: str


UNUSED = PartitionType("unused", UUID(int=0), "unused entry")
EFI_SYSTEM = PartitionType(
    "efi", UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), "EFI system partition"
)
BIOS_BOOT = PartitionType(
    "bios", UUID("21686148-6449-6E6F-744E-656564454649"), "BIOS boot partition"
)
FLATCAR_USR = PartitionType(
    "flatcar-usr", UUID("5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6"), "Flatcar /usr (gptprio)"
)
LINUX_DATA = PartitionType(
    "linux-data", UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4"), "Linux filesystem data"
)
FLATCAR_RESERVED = PartitionType(
    "flatcar-reserved", UUID("C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0"), "Flatcar reserved"
)
FLATCAR_RESIZE = PartitionType(
    "flatcar-resize", UUID("3884DD41-8582-4404-B9A8-E9B84F2DF50E"), "Flatcar root, grows on boot"
)
FLATCAR_ROOT_RAID = PartitionType(
    "flatcar-root-raid", UUID("BE9067B9-EA49-4F15-B4F6-F36F8C9E1818"), "Flatcar root on RAID"
)

KNOWN_TYPES: tuple[PartitionType, ...] = (
    UNUSED,
    EFI_SYSTEM,
    BIOS_BOOT,
    FLATCAR_USR,
    LINUX_DATA,
    FLATCAR_RESERVED,
    FLATCAR_RESIZE,
    FLATCAR_ROOT_RAID,
)
_BY_GUID = {t.guid: t for t in KNOWN_TYPES}


def type_name(guid: UUID) -> str:
    """The cgpt name of a type GUID, or the GUID itself (upper case) when it is not known."""
    known = _BY_GUID.get(guid)
    return known.name if known else str(guid).upper()
