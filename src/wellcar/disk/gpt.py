"""The GPT on-disk format: protective MBR, header and partition entries as bytes ⇄ dataclasses.

Pure functions only; reading and writing an image file is :mod:`wellcar.disk.gpt_image`.
Layout per UEFI 2.10 §5.3, little-endian, GUIDs in the mixed-endian form UEFI uses
(``uuid.UUID.bytes_le``), CRC32 as zlib computes it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from uuid import UUID

from .errors import GptHeaderError, InvalidAttributeError
from .partition_types import type_name
from .sizes import SECTOR_SIZE

SIGNATURE = b"EFI PART"
REVISION = 0x0001_0000
HEADER_SIZE = 92
ENTRY_SIZE = 128
ENTRY_COUNT = 128
ENTRIES_SECTORS = ENTRY_COUNT * ENTRY_SIZE // SECTOR_SIZE  # 32
FIRST_USABLE_LBA = 2 + ENTRIES_SECTORS  # 34: after PMBR, primary header and entries
BACKUP_SECTORS = ENTRIES_SECTORS + 1  # backup entries + backup header at the end
NAME_UNITS = 36  # the name field holds 36 UTF-16 code units

# The three attribute bits the UEFI spec defines for every partition type (bits 48-63 belong
# to the type: for flatcar-usr they are gptprio's, see gptprio.py).
REQUIRED_PARTITION_BIT = 0
NO_BLOCK_IO_PROTOCOL_BIT = 1
LEGACY_BIOS_BOOTABLE_BIT = 2
ATTRIBUTES_MAX = (1 << 64) - 1

# Upper bound on the entry array we agree to read: 128 entries of 128 bytes is what every
# tool writes; a corrupt header asking for gigabytes must not make us allocate them.
MAX_ENTRY_ARRAY_BYTES = 4 * 1024 * 1024

_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")
_CRC_OFFSET = 16  # header_crc32 is computed with this field set to zero
_ATTRIBUTES_OFFSET = 48  # of a partition entry
_MBR_PARTITION = struct.Struct("<B3sB3sII")
_MBR_SIGNATURE = b"\x55\xaa"
_MBR_TYPE_GPT_PROTECTIVE = 0xEE


def crc32(data: bytes | bytearray | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFF_FFFF


@dataclass(frozen=True)
class AttributeUpdate:
    """New 64-bit attribute value for one partition (what gptprio and cgpt write)."""

    number: int
    attributes: int

    def __post_init__(self) -> None:
        check_attributes(self.attributes)


def check_attributes(attributes: int) -> None:
    if not 0 <= attributes <= ATTRIBUTES_MAX:
        raise InvalidAttributeError(
            f"GPT attributes {attributes:#x} do not fit the 64-bit attribute field"
        )


@dataclass(frozen=True)
class GptHeader:
    """One GPT header (primary at LBA 1, backup at the last LBA)."""

    current_lba: int
    backup_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: UUID
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc32: int

    @property
    def entries_bytes(self) -> int:
        return self.entry_count * self.entry_size

    @property
    def entries_sectors(self) -> int:
        return -(-self.entries_bytes // SECTOR_SIZE)

    def encode(self) -> bytes:
        """The header as one sector, header CRC filled in."""
        fields = [
            SIGNATURE,
            REVISION,
            HEADER_SIZE,
            0,  # header CRC, computed below over the header with this field zero
            0,  # reserved
            self.current_lba,
            self.backup_lba,
            self.first_usable_lba,
            self.last_usable_lba,
            self.disk_guid.bytes_le,
            self.entries_lba,
            self.entry_count,
            self.entry_size,
            self.entries_crc32,
        ]
        body = bytearray(_HEADER.pack(*fields))
        struct.pack_into("<I", body, _CRC_OFFSET, crc32(body))
        return bytes(body) + bytes(SECTOR_SIZE - HEADER_SIZE)

    def as_backup(self, backup_entries_lba: int) -> GptHeader:
        """The matching copy for the other end of the disk (swap current and backup LBAs)."""
        return replace(
            self,
            current_lba=self.backup_lba,
            backup_lba=self.current_lba,
            entries_lba=backup_entries_lba,
        )


def decode_header(sector: bytes, expected_lba: int, total_sectors: int) -> GptHeader:
    """Validate and decode the header found at ``expected_lba``.

    Raises :class:`GptHeaderError` saying what is wrong. The entry array's CRC is checked by
    the caller, who has to read the array first.
    """
    if len(sector) < HEADER_SIZE or sector[:8] != SIGNATURE:
        raise GptHeaderError("no 'EFI PART' signature")
    (_, _, header_size, stored_crc, _, current, backup, first, last, guid, entries_lba,
     count, entry_size, entries_crc) = _HEADER.unpack_from(sector)  # fmt: skip
    if not HEADER_SIZE <= header_size <= SECTOR_SIZE:
        raise GptHeaderError(f"header size {header_size} is outside 92..512")
    body = bytearray(sector[:header_size])
    struct.pack_into("<I", body, _CRC_OFFSET, 0)
    if crc32(body) != stored_crc:
        raise GptHeaderError(f"header CRC mismatch (stored {stored_crc:#010x})")
    if current != expected_lba:
        raise GptHeaderError(f"header at LBA {expected_lba} says it is at LBA {current}")
    if entry_size < ENTRY_SIZE or entry_size % 8 or count < 1:
        raise GptHeaderError(f"bad entry array shape: {count} entries of {entry_size} bytes")
    if count * entry_size > MAX_ENTRY_ARRAY_BYTES:
        raise GptHeaderError(f"entry array of {count} x {entry_size} bytes is implausibly large")
    header = GptHeader(
        current_lba=current,
        backup_lba=backup,
        first_usable_lba=first,
        last_usable_lba=last,
        disk_guid=UUID(bytes_le=guid),
        entries_lba=entries_lba,
        entry_count=count,
        entry_size=entry_size,
        entries_crc32=entries_crc,
    )
    if not (1 < first <= last + 1 and last < total_sectors - 1 and backup < total_sectors):
        raise GptHeaderError(
            f"usable area {first}..{last} or backup LBA {backup} does not fit a disk of "
            f"{total_sectors} sectors"
        )
    if backup == current or first <= backup <= last:
        raise GptHeaderError(f"the other header's LBA {backup} is impossible")
    if not 1 < entries_lba <= total_sectors - header.entries_sectors:
        raise GptHeaderError(f"entry array LBA {entries_lba} lies outside the disk")
    if first <= entries_lba <= last or first <= entries_lba + header.entries_sectors - 1 <= last:
        raise GptHeaderError(f"entry array at LBA {entries_lba} overlaps the usable area")
    return header


@dataclass(frozen=True)
class Partition:
    """One used GPT entry. Numbers are 1-based, as in ``/dev/sda3`` and ``sgdisk -i 3``."""

    number: int
    type_guid: UUID
    unique_guid: UUID
    first_lba: int
    last_lba: int  # inclusive, as stored in the entry
    attributes: int
    label: str

    @property
    def sector_count(self) -> int:
        return self.last_lba - self.first_lba + 1

    @property
    def byte_offset(self) -> int:
        """Where the partition starts in the image file (or block device), in bytes."""
        return self.first_lba * SECTOR_SIZE

    @property
    def byte_size(self) -> int:
        return self.sector_count * SECTOR_SIZE

    @property
    def type_name(self) -> str:
        return type_name(self.type_guid)

    def has_attribute_bit(self, bit: int) -> bool:
        return bool(self.attributes >> bit & 1)


def encode_partition(partition: Partition) -> bytes:
    units = partition.label.encode("utf-16-le")
    if len(units) > NAME_UNITS * 2:
        raise InvalidAttributeError(
            f"partition label {partition.label!r} is longer than {NAME_UNITS} UTF-16 units"
        )
    check_attributes(partition.attributes)
    return _ENTRY.pack(
        partition.type_guid.bytes_le,
        partition.unique_guid.bytes_le,
        partition.first_lba,
        partition.last_lba,
        partition.attributes,
        units.ljust(NAME_UNITS * 2, b"\0"),
    )


def decode_partition(entry: bytes, number: int) -> Partition | None:
    """The partition in one entry, or None when the entry is unused (type GUID all zero)."""
    type_raw, unique_raw, first, last, attributes, name_raw = _ENTRY.unpack_from(entry)
    if type_raw == bytes(16):
        return None
    name = name_raw.decode("utf-16-le", errors="replace")
    return Partition(
        number=number,
        type_guid=UUID(bytes_le=type_raw),
        unique_guid=UUID(bytes_le=unique_raw),
        first_lba=first,
        last_lba=last,
        attributes=attributes,
        label=name.split("\0", 1)[0],
    )


def encode_entry_array(partitions: tuple[Partition, ...], count: int = ENTRY_COUNT) -> bytes:
    """An entry array of ``count`` 128-byte entries; partition N goes to entry N."""
    array = bytearray(count * ENTRY_SIZE)
    for partition in partitions:
        if not 1 <= partition.number <= count:
            raise InvalidAttributeError(f"partition number {partition.number} is not in 1..{count}")
        start = (partition.number - 1) * ENTRY_SIZE
        array[start : start + ENTRY_SIZE] = encode_partition(partition)
    return bytes(array)


def decode_entry_array(array: bytes, header: GptHeader) -> tuple[Partition, ...]:
    """The used entries, checked against the header's usable area."""
    found: list[Partition] = []
    for index in range(header.entry_count):
        start = index * header.entry_size
        partition = decode_partition(array[start : start + ENTRY_SIZE], index + 1)
        if partition is None:
            continue
        if not (
            header.first_usable_lba
            <= partition.first_lba
            <= partition.last_lba
            <= header.last_usable_lba
        ):
            raise GptHeaderError(
                f"partition {partition.number} ({partition.first_lba}..{partition.last_lba}) "
                f"lies outside the usable area {header.first_usable_lba}.."
                f"{header.last_usable_lba}"
            )
        found.append(partition)
    return tuple(found)


def patch_attributes(array: bytearray, header: GptHeader, update: AttributeUpdate) -> None:
    """Set one entry's attribute field in a raw entry array, leaving every other byte as is.

    Working on the raw bytes keeps whatever we do not model (longer entries, odd names)
    exactly as the disk had it.
    """
    offset = (update.number - 1) * header.entry_size + _ATTRIBUTES_OFFSET
    struct.pack_into("<Q", array, offset, update.attributes)


def protective_mbr(total_sectors: int) -> bytes:
    """LBA 0: an MBR with one 0xEE partition covering the disk, so MBR-only tools keep off."""
    sector = bytearray(SECTOR_SIZE)
    size = min(total_sectors - 1, 0xFFFF_FFFF)
    # CHS fields are meaningless here; start 0/0/2 and end "unrepresentable" as UEFI asks.
    entry = _MBR_PARTITION.pack(
        0x00, b"\x00\x02\x00", _MBR_TYPE_GPT_PROTECTIVE, b"\xff\xff\xff", 1, size
    )
    sector[446 : 446 + _MBR_PARTITION.size] = entry
    sector[510:512] = _MBR_SIGNATURE
    return bytes(sector)
