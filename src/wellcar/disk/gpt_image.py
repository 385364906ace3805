"""A GPT inside a disk image file: create it, read it back, change attributes, repair.

Works on plain files without root or loop devices. Reads validate both copies and fall back
to the backup when the primary is damaged; every write rewrites both copies from the good
one (so a write also repairs), backup first and primary last, with an fsync between: if the
machine stops half-way, the primary still holds the old table or the backup already holds
the new one, and the reader picks whichever is intact. GRUB's gptprio orders its writes the
same way.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import IO
from uuid import UUID

from .errors import (
    GptCorruptError,
    GptHeaderError,
    ImageAccessError,
    NotGptError,
    PartitionNotFoundError,
)
from .gpt import (
    BACKUP_SECTORS,
    ENTRIES_SECTORS,
    ENTRY_COUNT,
    ENTRY_SIZE,
    FIRST_USABLE_LBA,
    SIGNATURE,
    AttributeUpdate,
    GptHeader,
    Partition,
    crc32,
    decode_entry_array,
    decode_header,
    encode_entry_array,
    patch_attributes,
    protective_mbr,
)
from .sizes import SECTOR_SIZE

PRIMARY_HEADER_LBA = 1
PRIMARY_ENTRIES_LBA = 2


class HeaderCopy(StrEnum):
    PRIMARY = "primary"
    BACKUP = "backup"


@dataclass(frozen=True)
class GptDisk:
    """What the GPT of an image says, and how healthy its two copies are."""

    path: Path
    total_sectors: int
    header: GptHeader  # the copy the partitions were read from
    source: HeaderCopy
    partitions: tuple[Partition, ...]
    primary_problem: str | None  # None when the primary copy is valid
    backup_problem: str | None

    @property
    def disk_guid(self) -> UUID:
        return self.header.disk_guid

    @property
    def size_bytes(self) -> int:
        return self.total_sectors * SECTOR_SIZE

    @property
    def needs_repair(self) -> bool:
        """True when one copy is damaged or the copies disagree (any write repairs it)."""
        return self.primary_problem is not None or self.backup_problem is not None

    def partition(self, number: int) -> Partition:
        for partition in self.partitions:
            if partition.number == number:
                return partition
        present = ", ".join(str(p.number) for p in self.partitions) or "none"
        raise PartitionNotFoundError(
            f"{self.path}: there is no partition {number} (partitions present: {present})"
        )

    def partition_labelled(self, label: str) -> Partition:
        for partition in self.partitions:
            if partition.label == label:
                return partition
        raise PartitionNotFoundError(f"{self.path}: no partition is labelled {label!r}")


@dataclass(frozen=True)
class _ValidCopy:
    header: GptHeader
    entries: bytes
    partitions: tuple[Partition, ...]


@dataclass(frozen=True)
class _LoadedGpt:
    """A read GPT plus where each copy lives, which a write needs to put both back."""

    disk: GptDisk
    entries: bytes
    primary_entries_lba: int
    backup_header_lba: int
    backup_entries_lba: int


# ----------------------------------------------------------------------------- file access


@contextmanager
def _open_image(path: Path, mode: str) -> Iterator[IO[bytes]]:
    """Open the image, turning OS errors into one-line ImageAccessErrors, under a flock.

    The lock (shared to read, exclusive to write) keeps two wellcar processes from
    interleaving a read-modify-write of the same table.
    """
    try:
        handle = open(path, mode)  # noqa: SIM115 - closed below, after the lock is released
    except FileNotFoundError as exc:
        raise ImageAccessError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageAccessError(f"{path}: is a directory, not a disk image file") from exc
    except FileExistsError as exc:
        raise ImageAccessError(f"{path} already exists") from exc
    except OSError as exc:
        raise ImageAccessError(f"{path}: {exc.strerror or exc}") from exc
    with handle:
        writing = "+" in mode or "w" in mode or "x" in mode
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if writing else fcntl.LOCK_SH)
        try:
            yield handle
        except OSError as exc:
            raise ImageAccessError(f"{path}: {exc.strerror or exc}") from exc


def _read_at(handle: IO[bytes], lba: int, sectors: int) -> bytes:
    handle.seek(lba * SECTOR_SIZE)
    return handle.read(sectors * SECTOR_SIZE)


def _write_at(handle: IO[bytes], lba: int, data: bytes) -> None:
    handle.seek(lba * SECTOR_SIZE)
    handle.write(data)


def _sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


# ------------------------------------------------------------------------------- reading


def _read_copy(handle: IO[bytes], lba: int, total_sectors: int) -> _ValidCopy:
    """One validated copy (header + entry array) at ``lba``, or GptHeaderError."""
    header = decode_header(_read_at(handle, lba, 1), lba, total_sectors)
    entries = _read_at(handle, header.entries_lba, header.entries_sectors)[: header.entries_bytes]
    if len(entries) < header.entries_bytes:
        raise GptHeaderError(f"entry array at LBA {header.entries_lba} is cut off")
    if crc32(entries) != header.entries_crc32:
        raise GptHeaderError(f"partition entry array CRC mismatch at LBA {header.entries_lba}")
    return _ValidCopy(header, entries, decode_entry_array(entries, header))


def _attempt(handle: IO[bytes], lba: int, total_sectors: int) -> _ValidCopy | str:
    try:
        return _read_copy(handle, lba, total_sectors)
    except GptHeaderError as exc:
        return str(exc)


def _disagreement(primary: GptHeader, backup: GptHeader) -> str | None:
    """Why two individually valid copies do not describe the same table, if they do not."""
    if primary.backup_lba != backup.current_lba:
        return f"primary points to a backup at LBA {primary.backup_lba}, found it elsewhere"
    same = (
        primary.disk_guid == backup.disk_guid
        and primary.first_usable_lba == backup.first_usable_lba
        and primary.last_usable_lba == backup.last_usable_lba
        and primary.entry_count == backup.entry_count
        and primary.entry_size == backup.entry_size
        and primary.entries_crc32 == backup.entries_crc32
    )
    return None if same else "backup differs from the primary (an interrupted write?)"


def _no_gpt_message(handle: IO[bytes], path: Path, total_sectors: int) -> str:
    # A disk made for 4096-byte sectors has its header at byte 4096: say so rather than
    # calling it "not GPT".
    handle.seek(4096)
    if total_sectors > 8 and handle.read(8) == SIGNATURE:
        return f"{path}: GPT uses 4096-byte sectors; only 512-byte sectors are supported"
    return (
        f"{path} is not a GPT disk: no 'EFI PART' header at LBA 1 nor at the last LBA "
        f"(create one with 'wellcar disk create')"
    )


def _load(handle: IO[bytes], path: Path) -> _LoadedGpt:
    # Seeking to the end sizes image files and block devices alike (st_size is 0 for a
    # device), so the same code reads /dev/vda and disk.img.
    total = os.lseek(handle.fileno(), 0, os.SEEK_END) // SECTOR_SIZE
    if total < FIRST_USABLE_LBA + BACKUP_SECTORS:
        raise NotGptError(
            f"{path} is not a GPT disk: {total * SECTOR_SIZE} bytes cannot hold a partition table"
        )
    primary = _attempt(handle, PRIMARY_HEADER_LBA, total)
    backup_lba = primary.header.backup_lba if isinstance(primary, _ValidCopy) else total - 1
    backup = _attempt(handle, backup_lba, total)
    if isinstance(primary, _ValidCopy):
        backup_problem = (
            _disagreement(primary.header, backup.header)
            if isinstance(backup, _ValidCopy)
            else backup
        )
        return _LoadedGpt(
            disk=GptDisk(
                path=path,
                total_sectors=total,
                header=primary.header,
                source=HeaderCopy.PRIMARY,
                partitions=primary.partitions,
                primary_problem=None,
                backup_problem=backup_problem,
            ),
            entries=primary.entries,
            primary_entries_lba=primary.header.entries_lba,
            backup_header_lba=backup_lba,
            backup_entries_lba=(
                backup.header.entries_lba
                if isinstance(backup, _ValidCopy)
                else backup_lba - primary.header.entries_sectors
            ),
        )
    if isinstance(backup, _ValidCopy):
        return _LoadedGpt(
            disk=GptDisk(
                path=path,
                total_sectors=total,
                header=backup.header,
                source=HeaderCopy.BACKUP,
                partitions=backup.partitions,
                primary_problem=primary,
                backup_problem=None,
            ),
            entries=backup.entries,
            primary_entries_lba=PRIMARY_ENTRIES_LBA,
            backup_header_lba=backup_lba,
            backup_entries_lba=backup.header.entries_lba,
        )
    if primary == backup == "no 'EFI PART' signature":
        raise NotGptError(_no_gpt_message(handle, path, total))
    raise GptCorruptError(
        f"{path}: both GPT copies are corrupt (primary: {primary}; backup: {backup}); "
        "the partition table cannot be trusted"
    )


def read_gpt(path: Path) -> GptDisk:
    """Read and validate the GPT of an image file (backup copy if the primary is damaged)."""
    with _open_image(path, "rb") as handle:
        return _load(handle, path).disk


# ------------------------------------------------------------------------------- writing


def _write_both_copies(handle: IO[bytes], loaded: _LoadedGpt, entries: bytes) -> None:
    source = loaded.disk.header
    if PRIMARY_ENTRIES_LBA + source.entries_sectors > source.first_usable_lba:
        raise GptCorruptError(
            f"{loaded.disk.path}: the entry array would overlap the first usable sector"
        )
    primary = replace(
        source,
        current_lba=PRIMARY_HEADER_LBA,
        backup_lba=loaded.backup_header_lba,
        entries_lba=loaded.primary_entries_lba,
        entries_crc32=crc32(entries),
    )
    backup = primary.as_backup(loaded.backup_entries_lba)
    _write_at(handle, backup.entries_lba, entries)
    _write_at(handle, backup.current_lba, backup.encode())
    _sync(handle)
    _write_at(handle, primary.entries_lba, entries)
    _write_at(handle, primary.current_lba, primary.encode())
    _sync(handle)


def write_partition_attributes(path: Path, updates: Sequence[AttributeUpdate]) -> GptDisk:
    """Set the attribute field of the given partitions in both GPT copies; returns the result.

    All updates land in one write of each copy. Every other byte of the entry array is
    kept as it was. With no updates this only repairs (rewrites both copies from the good one).
    """
    with _open_image(path, "r+b") as handle:
        loaded = _load(handle, path)
        entries = bytearray(loaded.entries)
        for update in updates:
            loaded.disk.partition(update.number)  # raises if there is no such partition
            patch_attributes(entries, loaded.disk.header, update)
        _write_both_copies(handle, loaded, bytes(entries))
        return _load(handle, path).disk


def repair_gpt(path: Path) -> GptDisk:
    """Rewrite both GPT copies from the one that is intact."""
    return write_partition_attributes(path, ())


def write_new_gpt(
    path: Path,
    total_sectors: int,
    disk_guid: UUID,
    partitions: tuple[Partition, ...],
    *,
    overwrite: bool = False,
) -> GptDisk:
    """Create (or replace) an image file of ``total_sectors`` holding a fresh GPT.

    The file is sparse: only the MBR and the two GPT copies are written.
    """
    last_lba = total_sectors - 1
    header = GptHeader(
        current_lba=PRIMARY_HEADER_LBA,
        backup_lba=last_lba,
        first_usable_lba=FIRST_USABLE_LBA,
        last_usable_lba=last_lba - BACKUP_SECTORS,
        disk_guid=disk_guid,
        entries_lba=PRIMARY_ENTRIES_LBA,
        entry_count=ENTRY_COUNT,
        entry_size=ENTRY_SIZE,
        entries_crc32=0,
    )
    entries = encode_entry_array(partitions)
    with _open_image(path, "w+b" if overwrite else "x+b") as handle:
        handle.truncate(total_sectors * SECTOR_SIZE)
        _write_at(handle, 0, protective_mbr(total_sectors))
        loaded = _LoadedGpt(
            disk=GptDisk(path, total_sectors, header, HeaderCopy.PRIMARY, partitions, None, None),
            entries=entries,
            primary_entries_lba=PRIMARY_ENTRIES_LBA,
            backup_header_lba=last_lba,
            backup_entries_lba=last_lba - ENTRIES_SECTORS,
        )
        _write_both_copies(handle, loaded, entries)
        return _load(handle, path).disk
