"""The GPT byte format, without files."""

from __future__ import annotations

import struct
from uuid import UUID, uuid4

import pytest

from wellcar.disk import GptHeaderError, InvalidAttributeError, Partition
from wellcar.disk.gpt import (
    GptHeader,
    crc32,
    decode_header,
    decode_partition,
    encode_partition,
    protective_mbr,
)
from wellcar.disk.partition_types import FLATCAR_USR

TOTAL = 100_000
HEADER = GptHeader(
    current_lba=1,
    backup_lba=TOTAL - 1,
    first_usable_lba=34,
    last_usable_lba=TOTAL - 34,
    disk_guid=UUID("01234567-89ab-cdef-0123-456789abcdef"),
    entries_lba=2,
    entry_count=128,
    entry_size=128,
    entries_crc32=0xDEADBEEF,
)


def test_header_round_trip_and_layout() -> None:
    sector = HEADER.encode()
    assert len(sector) == 512 and sector[92:] == bytes(420)
    assert sector[:8] == b"EFI PART"
    assert struct.unpack_from("<IIII", sector, 8) == (0x10000, 92, crc32(
        sector[:16] + bytes(4) + sector[20:92]), 0)  # fmt: skip
    # GUIDs are stored mixed-endian: the first three groups little-endian
    assert sector[56:72] == bytes.fromhex("67452301ab89efcd0123456789abcdef")
    assert decode_header(sector, 1, TOTAL) == HEADER


def test_backup_copy_swaps_locations() -> None:
    backup = HEADER.as_backup(TOTAL - 33)
    assert (backup.current_lba, backup.backup_lba, backup.entries_lba) == (TOTAL - 1, 1, TOTAL - 33)
    assert decode_header(backup.encode(), TOTAL - 1, TOTAL) == backup


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda s: b"EFI PARX" + s[8:], "signature"),
        (lambda s: s[:60] + b"\xff" + s[61:], "header CRC mismatch"),
        (lambda s: s[:16] + b"\0\0\0\0" + s[20:], "header CRC mismatch"),
        (lambda s: s[:12] + struct.pack("<I", 600) + s[16:], "header size 600"),
    ],
)
def test_damaged_headers_are_rejected(damage: object, reason: str) -> None:
    assert callable(damage)
    with pytest.raises(GptHeaderError, match=reason):
        decode_header(damage(HEADER.encode()), 1, TOTAL)


def _with(**changes: int) -> bytes:
    from dataclasses import replace

    return replace(HEADER, **changes).encode()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sector", "reason"),
    [
        (_with(current_lba=5), "says it is at LBA 5"),
        (_with(entry_size=64), "bad entry array shape"),
        (_with(entry_count=1 << 20), "implausibly large"),
        (_with(last_usable_lba=TOTAL + 5), "does not fit"),
        (_with(backup_lba=1), "impossible"),
        (_with(backup_lba=500), "impossible"),
        (_with(entries_lba=TOTAL - 10), "outside the disk"),
        (_with(entries_lba=40), "overlaps the usable area"),
    ],
)
def test_inconsistent_headers_are_rejected(sector: bytes, reason: str) -> None:
    with pytest.raises(GptHeaderError, match=reason):
        decode_header(sector, 1, TOTAL)


def test_partition_entry_round_trip() -> None:
    partition = Partition(3, FLATCAR_USR.guid, uuid4(), 2048, 4095, (1 << 48) | 1 << 56, "USR-Ä")
    entry = encode_partition(partition)
    assert len(entry) == 128
    assert entry[:16] == bytes.fromhex("f4f5fb5d4828ac4baa5e0d9a20b745a6")  # mixed-endian type
    assert struct.unpack_from("<QQQ", entry, 32) == (2048, 4095, (1 << 48) | 1 << 56)
    assert entry[56:66] == "USR-Ä".encode("utf-16-le") and entry[66:] == bytes(62)
    assert decode_partition(entry, 3) == partition
    assert decode_partition(bytes(128), 3) is None
    assert (partition.byte_offset, partition.byte_size) == (2048 * 512, 2048 * 512)


def test_partition_label_limit() -> None:
    partition = Partition(1, FLATCAR_USR.guid, uuid4(), 34, 40, 0, "x" * 37)
    with pytest.raises(InvalidAttributeError, match="longer than 36"):
        encode_partition(partition)


def test_protective_mbr() -> None:
    mbr = protective_mbr(TOTAL)
    assert mbr[510:] == b"\x55\xaa"
    assert mbr[446 + 4] == 0xEE
    assert struct.unpack_from("<II", mbr, 446 + 8) == (1, TOTAL - 1)
    assert mbr[:446] == bytes(446) and mbr[462:510] == bytes(48)
    huge = protective_mbr(1 << 40)
    assert struct.unpack_from("<I", huge, 446 + 12) == (0xFFFFFFFF,)
