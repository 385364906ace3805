"""What the image's own primary GPT says about it, read from its first bytes.

The installer holds the primary GPT (protective MBR, header, entry array) and the backup
GPT (entry array and header at the image's end) back in memory while the rest streams to
the target, and writes them last: until then the target has no partition table at all.
The primary header gives everything needed before the first write: the image's size
(its backup header is its last sector), the two held regions and the partitions (OEM).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wellcar.disk.errors import GptHeaderError
from wellcar.disk.gpt import (
    GptHeader,
    Partition,
    crc32,
    decode_entry_array,
    decode_header,
)
from wellcar.disk.sizes import SECTOR_SIZE
from wellcar.install.errors import ImageFormatError

# The primary GPT fits in the first 34 sectors with the usual 128 entries; a header
# asking for a longer head than this is not one of ours.
MAX_HEAD_BYTES = 1 << 20
_BACKUP_LBA = struct.Struct("<Q")
_BACKUP_LBA_OFFSET = 32  # of the header: current LBA at 24, backup LBA at 32


@dataclass(frozen=True)
class ImageGeometry:
    header: GptHeader  # the primary one
    partitions: tuple[Partition, ...]

    @property
    def size(self) -> int:
        """The whole image in bytes: its backup header is its last sector."""
        return (self.header.backup_lba + 1) * SECTOR_SIZE

    @property
    def head(self) -> int:
        """Bytes held at the start: protective MBR, primary header and entries."""
        return self.header.first_usable_lba * SECTOR_SIZE

    @property
    def tail_start(self) -> int:
        """Where the held end begins: the backup entry array, then the backup header."""
        return (self.header.last_usable_lba + 1) * SECTOR_SIZE

    def partition_labelled(self, label: str) -> Partition:
        for partition in self.partitions:
            if partition.label == label:
                return partition
        raise ImageFormatError(f"the image has no partition labelled {label}")


def head_bytes_needed(first_sectors: bytes) -> int:
    """How much of the image's start to read before :func:`read_geometry` (from its
    header, which sits in the second sector)."""
    try:
        raw = first_sectors[SECTOR_SIZE : 2 * SECTOR_SIZE]
        first_usable = struct.unpack_from("<Q", raw, 40)[0]
    except struct.error:
        raise ImageFormatError("the image is shorter than one GPT header") from None
    return max(2 * SECTOR_SIZE, min(int(first_usable) * SECTOR_SIZE, MAX_HEAD_BYTES))


def read_geometry(head: bytes, what: str) -> ImageGeometry:
    """Validate the protective MBR, the primary header and its entry array (CRCs
    included) in ``head`` and describe the image. ImageFormatError names ``what``."""
    if len(head) < 2 * SECTOR_SIZE or head[510:512] != b"\x55\xaa" or head[450] != 0xEE:
        raise ImageFormatError(
            f"{what} does not start with a protective MBR: it is not a GPT disk image"
        )
    sector = head[SECTOR_SIZE : 2 * SECTOR_SIZE]
    backup_lba = _BACKUP_LBA.unpack_from(sector, _BACKUP_LBA_OFFSET)[0]
    try:
        header = decode_header(sector, 1, backup_lba + 1)
        end = header.entries_lba * SECTOR_SIZE + header.entries_bytes
        if end > len(head) or header.first_usable_lba * SECTOR_SIZE > len(head):
            raise GptHeaderError(f"its entry array ends at byte {end}, after the head read")
        array = head[header.entries_lba * SECTOR_SIZE : end]
        if crc32(array) != header.entries_crc32:
            raise GptHeaderError("entry array CRC mismatch")
        partitions = decode_entry_array(array, header)
    except GptHeaderError as exc:
        raise ImageFormatError(f"{what}: its primary GPT is not valid ({exc})") from None
    if header.backup_lba <= header.last_usable_lba:
        raise ImageFormatError(f"{what}: its GPT puts the backup header inside the usable area")
    return ImageGeometry(header, partitions)
